"""Broken and hostile input: each case raises one typed error naming the file."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from astropy.io import fits

from raysurvey.io import ReadErrorReason, SourceLimits, SpectrumReadError, read_spectrum
from raysurvey.io.examples import lamost_dr1, lamost_image, lamost_table, sdss_spec

R = ReadErrorReason


def _write(hdul: fits.HDUList) -> bytes:
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    return buffer.getvalue()


def _open(data: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(data))


def _lamost_with(edit: Callable[[fits.HDUList], None]) -> bytes:
    hdul = _open(lamost_image().data)
    hdul[0].data = hdul[0].data.copy()
    edit(hdul)
    return _write(hdul)


def truncated() -> bytes:
    data = lamost_image().data
    return data[: len(data) // 2]


def html_error_page() -> bytes:
    return b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>nope</body></html>"


def all_zero_flux() -> bytes:
    return _lamost_with(lambda h: h[0].data.__setitem__(0, 0.0))


def all_nan_flux() -> bytes:
    def edit(hdul):
        hdul[0].data[0, ::2] = np.nan
        hdul[0].data[0, 1::2] = np.inf

    return _lamost_with(edit)


def all_ivar_zero() -> bytes:
    return _lamost_with(lambda h: h[0].data.__setitem__(1, 0.0))


def non_monotonic_wavelength() -> bytes:
    def edit(hdul):
        hdul[0].data[2, 1000], hdul[0].data[2, 1001] = hdul[0].data[2, 1001], hdul[0].data[2, 1000]

    return _lamost_with(edit)


def wavelength_out_of_range() -> bytes:
    hdul = _open(lamost_dr1().data)
    hdul[0].header["COEFF0"] = 0.0
    return _write(hdul)


def missing_header_keyword() -> bytes:
    hdul = _open(lamost_dr1().data)
    del hdul[0].header["COEFF0"]
    return _write(hdul)


def mismatched_lengths() -> bytes:
    hdul = _open(lamost_table().data)
    cols = hdul[1].columns
    arrays = {c.name: hdul[1].data[c.name] for c in cols}
    new = [
        fits.Column(
            name=c.name,
            format="3900E" if c.name == "WAVELENGTH" else c.format,
            array=arrays[c.name][:, :3900] if c.name == "WAVELENGTH" else arrays[c.name],
        )
        for c in cols
    ]
    return _write(fits.HDUList([hdul[0], fits.BinTableHDU.from_columns(new, name="COADD")]))


def missing_column() -> bytes:
    hdul = _open(lamost_table().data)
    keep = [c for c in hdul[1].columns if c.name != "IVAR"]
    return _write(fits.HDUList([hdul[0], fits.BinTableHDU.from_columns(keep, name="COADD")]))


def missing_metadata_hdu() -> bytes:
    hdul = _open(sdss_spec().data)
    return _write(fits.HDUList([hdul[0], hdul[1]]))


def wrong_metadata_hdu() -> bytes:
    hdul = _open(sdss_spec().data)
    hdul[2].name = "SPZLINE"
    return _write(fits.HDUList([hdul[0], hdul[1], hdul[2]]))


def unknown_layout() -> bytes:
    return _write(fits.HDUList([fits.PrimaryHDU(np.ones((10, 10), np.float32))]))


def single_row_image() -> bytes:
    hdul = _open(lamost_image().data)
    hdul[0].data = hdul[0].data[:2].copy()
    return _write(hdul)


def corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(lamost_image().data))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    return bytes(data)


def gzip_bomb() -> bytes:
    # 64 MiB of zeros compress to ~64 KiB; the test's cap is 8 MiB.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * 2**20
    return b"".join([compressor.compress(block) for _ in range(64)] + [compressor.flush()])


def truncated_gzip() -> bytes:
    data = gzip.compress(lamost_image().data)
    return data[: len(data) - 500]


def huge_header() -> bytes:
    """6000 cards before END: valid FITS, but past the 4000-card cap."""
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    0",
    ]
    cards += [f"JUNK{i:04d}= {i:20d}" for i in range(6000)] + ["END"]
    data = "".join(card.ljust(80) for card in cards).encode()
    return data.ljust(-(-len(data) // 2880) * 2880)


def header_without_end() -> bytes:
    return b"SIMPLE  =                    T" + b" " * 50 + b"COMMENT x".ljust(80) * 36


def negative_naxis() -> bytes:
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                  -32",
        "NAXIS   =                    1",
        "NAXIS1  =                   -5",
        "END",
    ]
    return "".join(c.ljust(80) for c in cards).ljust(2880).encode()


def empty_gzip() -> bytes:
    return gzip.compress(b"")


def random_bytes() -> bytes:
    return np.random.default_rng(0).bytes(5000)


HOSTILE: dict[str, tuple[Callable[[], bytes], ReadErrorReason]] = {
    "empty_file": (lambda: b"", R.EMPTY),
    "empty_gzip": (empty_gzip, R.EMPTY),
    "truncated": (truncated, R.TRUNCATED),
    "html_error_page": (html_error_page, R.NOT_FITS),
    "random_bytes": (random_bytes, R.NOT_FITS),
    "all_zero_flux": (all_zero_flux, R.NO_VALID_FLUX),
    "nan_inf_flux": (all_nan_flux, R.NO_VALID_FLUX),
    "zero_ivar_everywhere": (all_ivar_zero, R.NO_VALID_FLUX),
    "non_monotonic_wavelength": (non_monotonic_wavelength, R.NON_MONOTONIC_WAVELENGTH),
    "wavelength_out_of_range": (wavelength_out_of_range, R.BAD_WAVELENGTH),
    "missing_header_keyword": (missing_header_keyword, R.MISSING_KEYWORD),
    "mismatched_lengths": (mismatched_lengths, R.SHAPE_MISMATCH),
    "missing_column": (missing_column, R.MISSING_COLUMN),
    "missing_hdu": (missing_metadata_hdu, R.MISSING_HDU),
    "wrong_hdu": (wrong_metadata_hdu, R.MISSING_HDU),
    "unknown_layout": (unknown_layout, R.UNKNOWN_LAYOUT),
    "too_few_image_rows": (single_row_image, R.SHAPE_MISMATCH),
    "corrupt_gzip": (corrupt_gzip, R.BAD_GZIP),
    "truncated_gzip": (truncated_gzip, R.BAD_GZIP),
    "gzip_bomb": (gzip_bomb, R.TOO_LARGE),
    "huge_header": (huge_header, R.TOO_LARGE),
    "header_without_end": (header_without_end, R.TRUNCATED),
    "negative_naxis": (negative_naxis, R.BAD_HEADER),
}

LIMITS = SourceLimits(max_inflated_bytes=8 * 2**20)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_raises_one_typed_error_naming_the_file(case: str, tmp_path) -> None:
    make, reason = HOSTILE[case]
    path = tmp_path / f"{case}.fits"
    path.write_bytes(make())
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum(str(path), limits=LIMITS)
    error = info.value
    assert error.reason is reason, error
    assert error.uri == str(path)
    assert str(path) in str(error) and reason.value in str(error)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bytes_report_the_given_name(case: str) -> None:
    make, reason = HOSTILE[case]
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum(make(), uri=f"bytes:{case}", limits=LIMITS)
    assert info.value.reason is reason and info.value.uri == f"bytes:{case}"


def test_missing_file_and_directory(tmp_path) -> None:
    for source in (str(tmp_path / "absent.fits"), str(tmp_path)):
        with pytest.raises(SpectrumReadError) as info:
            read_spectrum(source)
        assert info.value.reason is R.NOT_FOUND and info.value.uri == source


def test_file_over_size_cap_is_refused_before_reading(tmp_path) -> None:
    path = tmp_path / "big.fits"
    path.write_bytes(lamost_image().data)
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum(str(path), limits=SourceLimits(max_file_bytes=1000))
    assert info.value.reason is R.TOO_LARGE


def test_some_nan_pixels_are_masked_not_fatal() -> None:
    def edit(hdul):
        hdul[0].data[0, 10:20] = np.nan
        hdul[0].data[1, 30] = -1.0

    spectrum = read_spectrum(_lamost_with(edit))
    assert spectrum.mask[10:20].all() and spectrum.mask[30]
    assert np.all(spectrum.ivar[spectrum.mask] == 0)


def test_errors_survive_pickling() -> None:
    import pickle

    error = SpectrumReadError("s3://b/x.fits", "truncated", "short by 10 bytes")
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.uri, clone.reason, clone.message) == (error.uri, error.reason, error.message)
    assert clone.code == "truncated"


@pytest.mark.parametrize("seed", range(40))
def test_random_corruption_never_escapes_the_typed_error(seed: int) -> None:
    """Flip bytes anywhere in valid files: a Spectrum or a SpectrumReadError, nothing else."""
    rng = np.random.default_rng(seed)
    builders = (lamost_image, lamost_dr1, lamost_table, sdss_spec)
    data = bytearray(builders[seed % len(builders)]().data)
    for position in rng.integers(0, len(data), size=int(rng.integers(1, 40))):
        data[position] = int(rng.integers(0, 256))
    try:
        read_spectrum(bytes(data))
    except SpectrumReadError:
        pass
