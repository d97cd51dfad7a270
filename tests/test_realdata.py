"""Real survey files (../shared/realdata): every one reads with its pipeline labels, and
mutated copies of them fail only with ``SpectrumReadError``."""

from __future__ import annotations

import csv
import gzip
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysurvey.io import SpectrumReadError, read_spectrum
from raysurvey.io.errors import ReadErrorReason
from raysurvey.labels import class3_label
from raysurvey.spectra import to_grid

#: The one real file that is all zeros (a GELATO example): a correct read error.
ALL_ZERO = "sdss/spec-0269-51581-0003.fits"
SURVEY = {"LAMOST": "lamost", "SDSS": "sdss", "BOSS": "sdss"}


def _rows(realdata_dir):
    with (realdata_dir / "MANIFEST.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float | None:
    value = float(text) if text else None
    return None if value is None or value <= -999 else value


def test_every_real_file_reads_with_its_pipeline_labels(realdata_dir):
    rows = _rows(realdata_dir)
    assert len(rows) >= 300
    layouts = set()
    for row in rows:
        uri = str(realdata_dir / row["path"])
        if row["path"] == ALL_ZERO:
            with pytest.raises(SpectrumReadError) as info:
                read_spectrum(uri)
            assert info.value.reason == ReadErrorReason.NO_VALID_FLUX
            continue
        spectrum = read_spectrum(uri)
        meta = spectrum.meta
        layouts.add(meta["layout"])
        assert meta["survey"] == SURVEY[row["survey"]], row["path"]
        assert meta["class"] == row["class"], row["path"]
        if not row["subclass"].startswith("SPEC_CLN"):  # DR7 files carry no SUBCLASS
            assert (meta["subclass"] or "") == row["subclass"], row["path"]
        z = _number(row["z"])
        if z is None:
            assert meta["z"] is None, row["path"]
        else:
            assert math.isclose(meta["z"], z, rel_tol=1e-5, abs_tol=1e-7), row["path"]
        grid = to_grid(spectrum)
        assert grid.good_fraction > 0.3, row["path"]  # real files: up to half is ivar = 0
    assert layouts >= {"lamost_dr1", "lamost_image", "lamost_table", "sdss_spec", "sdss_spspec"}


def test_lamost_dr6_dr8_row_names_with_commas(realdata_dir):
    """DR6-DR8 write EXTEN0 = 'Flux, Inverse, Wavelength, Andmask, Ormask'."""
    from astropy.io import fits

    with_commas = []
    for row in _rows(realdata_dir):
        if row["survey"] == "LAMOST":
            header = fits.getheader(realdata_dir / row["path"])
            if "," in str(header.get("EXTEN0", "")):
                with_commas.append(row["path"])
    assert len(with_commas) >= 2
    for path in with_commas:
        spectrum = read_spectrum(str(realdata_dir / path))
        assert spectrum.meta["layout"] == "lamost_image"
        assert 3600 < spectrum.wavelength[0] < 3800 and 8900 < spectrum.wavelength[-1] < 9200


def test_sdss_informational_mask_bits_keep_pixels(realdata_dir):
    """spec-1493-52933-0582 has MANYBADCOLUMNS (bit 4) on every pixel and ivar > 0
    everywhere: all its pixels are usable."""
    spectrum = read_spectrum(str(realdata_dir / "sdss/spec-1493-52933-0582.fits"))
    assert spectrum.mask.mean() < 0.01


# -- mutated real files: only SpectrumReadError may come out --------------------------

FUZZ_FILES = (
    "lamost/spec-55862-B6212_sp06-003.fits",  # DR1 image
    "lamost/spec-55859-F5902_sp01-001.fits.gz",  # DR9 table, gzip
    "sdss/spec-1493-52933-0582.fits",  # SDSS SPECOBJ
    "sdss/spSpec-51984-0296-001.fit",  # DR7
)


@pytest.fixture(scope="module")
def fuzz_sources(realdata_dir):
    out = {}
    for name in FUZZ_FILES:
        data = (realdata_dir / name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        out[name] = data
    return out


def _read_or_typed_error(data: bytes) -> None:
    try:
        spectrum = read_spectrum(data, uri="mutated.fits")
    except SpectrumReadError as error:
        assert error.uri == "mutated.fits" and error.reason in ReadErrorReason
        return
    assert spectrum.flux.size == spectrum.wavelength.size  # it read: a sane spectrum
    assert np.all(np.diff(spectrum.wavelength) > 0)


FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(name=st.sampled_from(FUZZ_FILES), data=st.data())
def test_flipped_bytes(fuzz_sources, name, data):
    raw = bytearray(fuzz_sources[name])
    for _ in range(data.draw(st.integers(1, 40))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    _read_or_typed_error(bytes(raw))


@FUZZ
@given(name=st.sampled_from(FUZZ_FILES), fraction=st.floats(0.0, 0.999))
def test_truncated(fuzz_sources, name, fraction):
    raw = fuzz_sources[name]
    _read_or_typed_error(raw[: int(len(raw) * fraction)])


@FUZZ
@given(
    name=st.sampled_from(FUZZ_FILES),
    card=st.integers(0, 60),
    junk=st.binary(min_size=1, max_size=70).map(lambda b: bytes(c % 95 + 32 for c in b)),
)
def test_junk_header_values(fuzz_sources, name, card, junk):
    """Overwrite the value part of a primary-header card with printable junk."""
    raw = bytearray(fuzz_sources[name])
    start = card * 80 + 10
    raw[start : start + len(junk)] = junk[:70]
    _read_or_typed_error(bytes(raw))


@FUZZ
@given(name=st.sampled_from(FUZZ_FILES), data=st.data())
def test_repeated_blocks(fuzz_sources, name, data):
    """Repeat or drop a 2880-byte FITS block somewhere in the file."""
    raw = fuzz_sources[name]
    n_blocks = len(raw) // 2880
    block = data.draw(st.integers(0, max(0, n_blocks - 1)))
    piece = raw[block * 2880 : (block + 1) * 2880]
    if data.draw(st.booleans()):
        mutated = raw[: block * 2880] + piece + raw[block * 2880 :]
    else:
        mutated = raw[: block * 2880] + raw[(block + 1) * 2880 :]
    _read_or_typed_error(mutated)


def test_class3_labels_of_the_set(realdata_dir):
    classes = [class3_label(r["class"]) for r in _rows(realdata_dir)]
    assert classes.count("QSO") >= 100 and classes.count("GALAXY") >= 8
