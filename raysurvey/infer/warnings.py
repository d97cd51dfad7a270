"""The ``warning`` bits, re-exported from ``raysurvey.warning_bits`` (defined there once)."""

from raysurvey.warning_bits import (  # noqa: F401
    BAD_READ,
    BITS,
    CHAIN_DISAGREES,
    FEW_GOOD_PIXELS,
    FEW_GOOD_PIXELS_BELOW,
    LOW_CONFIDENCE,
    LOW_SNR,
    LOW_SNR_BELOW,
    OUT_OF_DISTRIBUTION,
    TEMPLATE_DISAGREES,
    Z_UNRELIABLE,
    bit_names,
    bit_value,
)
