"""The fast read path (``engine="fast"``, ``io/rawfits.py``) against the astropy path:
the same arrays and labels on every layout and real file, read without falling back."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from astropy.io import fits

from raysurvey.io import SpectrumReadError, read_spectrum
from raysurvey.io.examples import EXAMPLE_BUILDERS, lamost_image, sdss_spec
from raysurvey.io.rawfits import RawFits, Unsupported
from raysurvey.io.reader import ENGINE_ENV, default_engine, read_fast
from raysurvey.io.source import load_fits_bytes

ARRAYS = ("wavelength", "flux", "ivar", "mask")


def assert_same(fast, reference) -> None:
    for name in ARRAYS:
        a, b = getattr(fast, name), getattr(reference, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    assert fast.meta == reference.meta


@pytest.mark.parametrize("name", list(EXAMPLE_BUILDERS))
@pytest.mark.parametrize("gz", [False, True])
def test_examples_read_alike_without_fallback(name: str, gz: bool) -> None:
    data = EXAMPLE_BUILDERS[name](gzipped=gz).data
    assert_same(read_fast(data, fallback=False), read_spectrum(data, engine="astropy"))


def test_synthetic_file_variants_read_alike(tmp_path) -> None:
    from raysurvey.synth.config import SynthConfig
    from raysurvey.synth.release import generate_one, make_source

    config = SynthConfig(n=24, out=str(tmp_path), survey="mixed", seed=3)
    source = make_source(None)
    layouts = set()
    for index in range(24):
        files, row = generate_one(config, source, index)
        data = files[0][1]
        fast = read_fast(data, fallback=False)
        assert_same(fast, read_spectrum(data, engine="astropy"))
        layouts.add(fast.meta["layout"])
    assert {"sdss_spec"} < layouts


def test_real_files_read_alike_without_fallback(realdata_dir) -> None:
    with (realdata_dir / "MANIFEST.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        path = str(realdata_dir / row["path"])
        try:
            reference = read_spectrum(path, engine="astropy")
        except SpectrumReadError as error:
            with pytest.raises(SpectrumReadError) as info:
                read_fast(path, fallback=False)
            assert info.value.reason is error.reason, path
            continue
        assert_same(read_fast(path, fallback=False), reference)


def _table_file(columns: list[fits.Column]) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(buffer)
    return buffer.getvalue()


def test_unsigned_and_vector_columns_decode_as_astropy_does() -> None:
    columns = [
        fits.Column(name="u64", format="K", array=np.array([2**63 + 5, 7], np.uint64)),
        fits.Column(name="u32", format="J", array=np.array([2**31 + 9, 1], np.uint32)),
        fits.Column(name="u16", format="I", array=np.array([40000, 2], np.uint16)),
        fits.Column(name="i8", format="B", array=np.array([-100, 5], np.int8)),
        fits.Column(name="vec", format="3E", array=np.arange(6, dtype=np.float32).reshape(2, 3)),
        fits.Column(name="txt", format="5A", array=np.array(["ab", "cdefg"])),
        fits.Column(name="d", format="D", array=np.array([1.5, -2.25])),
    ]
    data = _table_file(columns)
    loaded, _, structure = load_fits_bytes(data)
    table = RawFits(loaded, structure).hdu(1).table()
    got = table.read(range(len(columns)))
    with fits.open(io.BytesIO(data)) as hdul:
        for i, column in enumerate(columns):
            expected = hdul[1].data[column.name]
            if column.name == "txt":
                assert [v.decode() for v in got[i]] == list(expected)
            else:
                assert got[i].dtype.kind == expected.dtype.kind, column.name
                assert np.array_equal(got[i], expected), column.name
    assert table.index("U64") == 0 and table.index("absent") is None


def test_scaled_columns_are_left_to_astropy() -> None:
    data = _table_file([fits.Column(name="x", format="J", array=np.array([4, 5], np.int32))])
    end = b"END".ljust(80) + b" " * 80
    at = data.index(end, data.index(b"XTENSION"))  # the table header's END card
    data = (
        data[:at]
        + b"TSCAL1  =                  0.5".ljust(80)
        + b"END".ljust(80)
        + data[at + 160 :]
    )
    loaded, _, structure = load_fits_bytes(data)
    with pytest.raises(Unsupported):
        RawFits(loaded, structure).hdu(1).table().read([0])


def test_scaled_image_falls_back_to_the_astropy_answer() -> None:
    hdul = fits.open(io.BytesIO(lamost_image().data))
    hdul[0].header["BZERO"] = 0.0
    hdul[0].header["BSCALE"] = 2.0
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    data = buffer.getvalue()
    with pytest.raises(SpectrumReadError, match="Unsupported: scaled image"):
        read_fast(data, fallback=False)
    reference = read_spectrum(data, engine="astropy")
    assert_same(read_spectrum(data, engine="fast"), reference)
    assert reference.flux[100] == 2 * lamost_image().flux[100]


def test_bad_file_errors_come_from_the_astropy_path() -> None:
    data = sdss_spec().data
    cut = data.replace(b"TTYPE4  = 'and_mask'", b"TTY^E4  = 'and_mask'")
    with pytest.raises(SpectrumReadError) as fast:
        read_spectrum(cut, engine="fast")
    with pytest.raises(SpectrumReadError) as reference:
        read_spectrum(cut, engine="astropy")
    assert (fast.value.reason, fast.value.message) == (
        reference.value.reason,
        reference.value.message,
    )


def test_engine_from_environment(monkeypatch) -> None:
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert default_engine() == "fast"
    monkeypatch.setenv(ENGINE_ENV, "astropy")
    assert default_engine() == "astropy"
    monkeypatch.setenv(ENGINE_ENV, "nope")
    with pytest.raises(ValueError):
        default_engine()
    with pytest.raises(ValueError):
        read_spectrum(sdss_spec().data, engine="nope")
