"""Every published layout read back value by value, plain and gzip-compressed."""

from __future__ import annotations

import numpy as np
import pytest

from raysurvey.io import (
    META_KEYS,
    get_reader,
    identify_layout,
    list_readers,
    open_fits_file,
    read_spectrum,
)
from raysurvey.io.examples import EXAMPLE_BUILDERS, ExampleFile

CASES = [(name, gz) for name in EXAMPLE_BUILDERS for gz in (False, True)]


def build(name: str, gz: bool) -> ExampleFile:
    return EXAMPLE_BUILDERS[name](gzipped=gz)


@pytest.mark.parametrize(("name", "gz"), CASES, ids=[f"{n}{'.gz' if g else ''}" for n, g in CASES])
def test_layout_reads_back_value_by_value(name: str, gz: bool, tmp_path) -> None:
    example = build(name, gz)
    path = tmp_path / example.name
    path.write_bytes(example.data)
    spectrum = read_spectrum(str(path))

    assert spectrum.meta["layout"] == example.layout
    assert len(spectrum) == example.flux.size
    # wavelength range and every pixel, to float32 storage precision
    np.testing.assert_allclose(spectrum.wavelength, example.wavelength, rtol=1e-6)
    assert spectrum.wavelength[0] == pytest.approx(example.wavelength[0], rel=1e-6)
    assert spectrum.wavelength[-1] == pytest.approx(example.wavelength[-1], rel=1e-6)
    # flux and ivar at chosen pixels (exact: float32 in, float32 out)
    for pixel in (0, 1, 500, 1234, example.flux.size - 1):
        assert spectrum.flux[pixel] == example.flux[pixel]
        if pixel not in example.bad_pixels:
            assert spectrum.ivar[pixel] == pytest.approx(example.ivar[pixel], rel=1e-6)
    # bad pixels flagged, and only those
    assert set(np.flatnonzero(spectrum.mask)) == set(example.bad_pixels)
    assert np.all(spectrum.ivar[list(example.bad_pixels)] == 0)
    # every label
    assert set(META_KEYS) <= set(spectrum.meta)
    for key, expected in example.meta.items():
        got = spectrum.meta[key]
        if isinstance(expected, float):
            assert got == pytest.approx(expected, rel=1e-6), key
        else:
            assert got == expected, key
    assert spectrum.meta["uri"] == str(path)
    assert spectrum.wavelength.dtype == np.float64
    assert spectrum.flux.dtype == np.float32 and spectrum.mask.dtype == bool


@pytest.mark.parametrize("name", list(EXAMPLE_BUILDERS))
def test_bytes_and_file_uri_give_the_same_spectrum(name: str, tmp_path) -> None:
    example = build(name, False)
    path = tmp_path / example.name
    path.write_bytes(example.data)
    from_bytes = read_spectrum(example.data, uri="memory")
    from_uri = read_spectrum(f"file://{path}")
    np.testing.assert_array_equal(from_bytes.flux, from_uri.flux)
    assert from_bytes.meta["uri"] == "memory"
    assert from_uri.meta["uri"] == f"file://{path}"


def test_identification_uses_headers_not_file_names(tmp_path) -> None:
    """A LAMOST file renamed like an SDSS spSpec is still read as LAMOST."""
    example = build("lamost_image", False)
    path = tmp_path / "spSpec-51630-0266-100.fit"
    path.write_bytes(example.data)
    assert read_spectrum(str(path)).meta["layout"] == "lamost_image"


def test_each_reader_identifies_only_its_own_layout() -> None:
    for name in EXAMPLE_BUILDERS:
        example = build(name, False)
        with open_fits_file(example.data) as fits_file:
            claimed = [r.name for r in list_readers() if r.identify(fits_file)]
            assert claimed == [example.layout], name
            assert identify_layout(fits_file).name == example.layout


@pytest.mark.parametrize("name", list(EXAMPLE_BUILDERS))
def test_fast_header_agrees_with_astropy_on_every_card(name: str) -> None:
    from io import BytesIO

    from astropy.io import fits

    example = build(name, False)
    with open_fits_file(example.data) as fits_file, fits.open(BytesIO(example.data)) as hdul:
        reference = hdul[0].header
        assert set(fits_file.header) == {
            k for k in reference if k not in ("COMMENT", "HISTORY", "")
        }
        for key in fits_file.header:
            assert fits_file.header[key] == reference[key], key
            assert type(fits_file.header[key]) is type(reference[key]), key


def test_fast_header_parses_fits_value_syntax() -> None:
    from raysurvey.io.header import FastHeader

    cards = {
        "S": b"'O''Brien / x'       / a comment",
        "E": b"''",
        "T": b"                   T / flag",
        "I": b"                 -42",
        "F": b"             1.5D-03 / d exponent",
        "G": b"            -9999.0",
        "C": b"          (1.0, 2.0)",
        "U": b"                     / undefined",
    }
    header_bytes = b"".join(
        (key.ljust(8) + "= ").encode() + value.ljust(70) for key, value in cards.items()
    )
    header_bytes += b"COMMENT   S = 'decoy: not a value card'".ljust(80) + b"END".ljust(80)
    header = FastHeader(header_bytes, fallback=lambda: {"C": complex(1, 2)})
    assert header["S"] == "O'Brien / x" and header["E"] == ""
    assert header["T"] is True and header["I"] == -42
    assert header["F"] == pytest.approx(1.5e-3) and header["G"] == -9999.0
    assert header["C"] == complex(1, 2) and header["U"] is None
    assert "s" in header and "X" not in header and "TOOLONGKEY" not in header
    assert len(header) == len(cards) and list(header) == list(cards)


def test_dr1_row_two_is_not_wavelength() -> None:
    """DR1's third row is continuum-subtracted flux; wavelength comes from COEFF0/1."""
    example = build("lamost_dr1", False)
    spectrum = read_spectrum(example.data)
    assert spectrum.wavelength[0] == pytest.approx(10**3.5682, rel=1e-9)
    assert spectrum.wavelength[1] / spectrum.wavelength[0] == pytest.approx(10**1e-4, rel=1e-12)


def test_spspec_sigma_becomes_ivar_and_emission_line_bit_is_not_bad() -> None:
    example = build("sdss_spspec", False)
    spectrum = read_spectrum(example.data)
    assert spectrum.ivar[100] == pytest.approx(0.25)  # sigma 2 -> ivar 1/4
    assert not spectrum.mask[1600]  # EMLINE mask bit: informative, not bad


def test_missing_values_become_none() -> None:
    """-9999 placeholders and empty strings are nulls, never numbers."""
    example = build("lamost_table", False)  # SUBCLASS "" and MAG2 -9999
    spectrum = read_spectrum(example.data)
    assert spectrum.meta["subclass"] is None
    assert spectrum.meta["z"] == pytest.approx(1.2345)


def test_forced_layout_and_registry() -> None:
    assert get_reader("sdss_spec").survey == "sdss"
    with pytest.raises(KeyError):
        get_reader("nope")
    spectrum = read_spectrum(build("sdss_spec_specobj", False).data, layout="sdss_spec")
    assert spectrum.meta["metadata_hdu"] == "SPECOBJ"
