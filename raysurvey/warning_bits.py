"""The catalog's ``warning`` bitmask: the bits, their names, the fixed thresholds.

One place defines every bit; docs/catalog.md has the same table. A row's ``warning``
is the OR of its bits (0: no warning), stored as int64. Bits are appended, never
renumbered, so a cut such as ``warning & 2 = 0`` means the same in every catalog.
This module imports nothing (``raysurvey.infer.warnings`` re-exports it, but importing
that loads the whole inference stack), so any stage can use it cheaply:
``from raysurvey.warning_bits import Z_UNRELIABLE``.

- ``LOW_CONFIDENCE`` (1): the calibrated confidence of the class bundle is below the
  threshold fitted on the bundle's validation split (``raysurvey.calibration``).
- ``OUT_OF_DISTRIBUTION`` (2): the class bundle's ``ood_score`` (distance from the
  training data in the model's own feature space) is above its fitted threshold.
- ``LOW_SNR`` (4): the survey's ``snr_r`` (the grid S/N where the release has none)
  is below ``LOW_SNR_BELOW``.
- ``FEW_GOOD_PIXELS`` (8): ``good_fraction`` is below ``FEW_GOOD_PIXELS_BELOW``.
- ``BAD_READ`` (16): the row is an error row (unreadable file, non-finite output).
- ``CHAIN_DISAGREES`` (32): a chained subclass bundle (stellar8) says the row does
  not look like the stars it was trained on (its own ood_score above its threshold,
  or its best label is not a stellar one), for a row the class bundle calls STAR.
- ``Z_UNRELIABLE`` (64): the template-fit ``z_pred`` cannot be trusted: a second
  minimum more than 1000 km/s away fits within delta chi^2 25, the best sits on the edge
  of the searched range, or too few pixels carry information (``raysurvey.redshift``).
- ``TEMPLATE_DISAGREES`` (128): the redshift step's templates of another class fit the
  spectrum decisively better than those of ``pred_class`` (delta chi^2 / reduced chi^2
  > 25; ``template_class`` names the class): a physical second opinion on the class.
"""

from __future__ import annotations

LOW_CONFIDENCE = 1
OUT_OF_DISTRIBUTION = 2
LOW_SNR = 4
FEW_GOOD_PIXELS = 8
BAD_READ = 16
CHAIN_DISAGREES = 32
Z_UNRELIABLE = 64
TEMPLATE_DISAGREES = 128

#: Every bit by name, in bit order.
BITS: dict[str, int] = {
    "LOW_CONFIDENCE": LOW_CONFIDENCE,
    "OUT_OF_DISTRIBUTION": OUT_OF_DISTRIBUTION,
    "LOW_SNR": LOW_SNR,
    "FEW_GOOD_PIXELS": FEW_GOOD_PIXELS,
    "BAD_READ": BAD_READ,
    "CHAIN_DISAGREES": CHAIN_DISAGREES,
    "Z_UNRELIABLE": Z_UNRELIABLE,
    "TEMPLATE_DISAGREES": TEMPLATE_DISAGREES,
}

#: LOW_SNR below this S/N per pixel in r. Below 5 the survey pipelines' own classes
#: become unreliable (LOW_SNR is also where our synthetic test accuracy drops).
LOW_SNR_BELOW = 5.0
#: FEW_GOOD_PIXELS below this fraction of good native pixels: with half the spectrum
#: masked, the lines the classes differ by may be gone.
FEW_GOOD_PIXELS_BELOW = 0.5


def bit_names(mask: int) -> list[str]:
    """The names of the bits set in ``mask`` (unknown bits as ``BIT<k>``)."""
    mask = int(mask)
    names = [name for name, bit in BITS.items() if mask & bit]
    known = sum(BITS.values())
    rest, k = mask & ~known, 0
    while rest:
        if rest & 1:
            names.append(f"BIT{k}")
        rest >>= 1
        k += 1
    return names


def bit_value(name: str) -> int:
    """The value of a bit given by name (case-insensitive); ValueError if unknown."""
    try:
        return BITS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown warning bit {name!r}; known: {', '.join(BITS)}") from None
