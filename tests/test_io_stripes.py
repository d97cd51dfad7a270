"""Stripes and cutout readers: round trips, identification, hostile input, batch decoding."""

from __future__ import annotations

import functools
import gzip
import io
from collections.abc import Callable

import numpy as np
import pytest
from astropy.io import fits

from raysurvey.data.decode_2d import decode_cutouts, decode_stripes
from raysurvey.io import (
    ReadErrorReason,
    SpectrumReadError,
    get_product_reader,
    list_product_readers,
    read_cutout,
    read_spectrum,
    read_stripes,
)
from raysurvey.io.examples import lamost_image, sdss_spec
from raysurvey.io.products import ProductReader, register_product_reader
from raysurvey.synth import SynthConfig, make_source
from raysurvey.synth.photometry import simulate_cutout, write_cutout
from raysurvey.synth.release import simulate
from raysurvey.synth.stripes import simulate_stripes, write_stripes
from raysurvey.synth.writers import product_cards

R = ReadErrorReason


class Products:
    """One object's stripes and cutout, as simulated and as file bytes."""

    def __init__(self) -> None:
        config = SynthConfig(n=1, out="unused", templates=None, seed=3, survey="lamost")
        sim = simulate(config, make_source(None), 0)  # built-in model: no template files
        p, labels, snr = sim.plan, sim.labels, sim.observed.snr
        rng = np.random.default_rng([3, 0, 2, 1])
        self.stripes = simulate_stripes(sim.rest, p.z, p.snr_r, rng, contamination=0.0)
        self.cutout = simulate_cutout(sim.rest, p.z, p.snr_r, np.random.default_rng([3, 0, 3, 1]))
        cards = product_cards("STRIPES", "LAMOST", labels, "lamost", snr, "spec-x.fits")
        self.stripes_bytes = write_stripes(self.stripes, cards, gzipped=False)
        self.stripes_gz = write_stripes(self.stripes, cards, gzipped=True)
        self.stripes_ivar = write_stripes(self.stripes, cards, gzipped=False, with_ivar=True)
        cards = product_cards("CUTOUT", "SDSS 2.5-M", labels, "lamost", snr, "spec-x.fits")
        self.cutout_bytes = write_cutout(self.cutout, cards, p.ra, p.dec, gzipped=False)
        self.cutout_gz = write_cutout(self.cutout, cards, p.ra, p.dec, gzipped=True)
        self.labels = labels


@functools.cache
def shared() -> Products:
    """Built once per session: the fixture and the hostile-case builders share it."""
    return Products()


@pytest.fixture(scope="module")
def products() -> Products:
    return shared()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_stripes_round_trip(products: Products, gz: bool, tmp_path) -> None:
    path = tmp_path / ("s.fits.gz" if gz else "s.fits")
    path.write_bytes(products.stripes_gz if gz else products.stripes_bytes)
    stripes = read_stripes(str(path))
    for arm in ("blue", "red"):
        made = getattr(products.stripes, arm)
        assert stripes.image(arm).dtype == np.float32 and stripes.image(arm).shape == (15, 4000)
        np.testing.assert_array_equal(stripes.image(arm), made.image)
        np.testing.assert_array_equal(getattr(stripes, f"sky_{arm}"), made.sky)
        assert stripes.wave(arm).dtype == np.float64
        np.testing.assert_allclose(stripes.wave(arm), made.wave, rtol=1e-9)
        assert stripes.trace_row[arm] == pytest.approx(made.trace_row, abs=1e-4)
        assert stripes.meta[f"gain_{arm}"] == pytest.approx(made.gain, abs=1e-4)
        assert stripes.meta[f"bunit_{arm}"] == "adu"
        assert getattr(stripes, f"ivar_{arm}") is None
    assert 3690 < stripes.wave_blue[0] < 3710 and 8990 < stripes.wave_red[-1] < 9010
    meta = stripes.meta
    assert meta["layout"] == "stripes" and meta["uri"] == str(path)
    assert meta["obsid"] == products.labels.obsid and meta["survey"] == "lamost"
    assert meta["class"] == products.labels.survey_class.upper()
    assert meta["ra"] == pytest.approx(products.labels.ra, abs=1e-6)
    assert meta["exptime"] == 1800.0 and meta["contaminated"] is False


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_cutout_round_trip(products: Products, gz: bool, tmp_path) -> None:
    path = tmp_path / ("c.fits.gz" if gz else "c.fits")
    path.write_bytes(products.cutout_gz if gz else products.cutout_bytes)
    cutout = read_cutout(str(path))
    assert cutout.gri.dtype == np.float32 and cutout.gri.shape == (3, 64, 64)
    np.testing.assert_array_equal(cutout.gri, products.cutout.images)
    assert cutout.bands == ("g", "r", "i") and cutout.pixscale == pytest.approx(0.396)
    for band in cutout.bands:
        assert cutout.seeing[band] == pytest.approx(products.cutout.seeing[band], abs=1e-4)
        assert cutout.meta[f"mag_{band}"] == pytest.approx(products.cutout.mags[band], abs=1e-4)
    assert cutout.meta["bunit"] == "nanomaggy" and cutout.meta["layout"] == "cutout"
    assert cutout.meta["obsid"] == products.labels.obsid


def test_bytes_file_uri_and_any_file_name_read_the_same(products: Products, tmp_path) -> None:
    """Identified by header: a stripes file named like a spectrum still reads as stripes."""
    disguised = tmp_path / "spec-57000-x_sp01-001.fits"
    disguised.write_bytes(products.stripes_bytes)
    by_path = read_stripes(str(disguised))
    by_uri = read_stripes(f"file://{disguised}")
    by_bytes = read_stripes(products.stripes_bytes, uri="mem:stripes")
    np.testing.assert_array_equal(by_path.red, by_uri.red)
    np.testing.assert_array_equal(by_path.red, by_bytes.red)
    assert by_bytes.meta["uri"] == "mem:stripes"
    other = tmp_path / "image.fit"
    other.write_bytes(products.cutout_bytes)
    np.testing.assert_array_equal(read_cutout(str(other)).gri, products.cutout.images)


def test_layout_without_prodtype_is_identified_by_extnames(products: Products) -> None:
    for data, reader in (
        (products.stripes_bytes, read_stripes),
        (products.cutout_bytes, read_cutout),
    ):
        hdul = _open(data)
        del hdul[0].header["PRODTYPE"]
        assert reader(_write(hdul)) is not None


def test_ivar_images_when_present(products: Products) -> None:
    stripes = read_stripes(products.stripes_ivar)
    for arm in ("blue", "red"):
        ivar = getattr(stripes, f"ivar_{arm}")
        assert ivar.shape == (15, 4000) and (ivar > 0).all()
        np.testing.assert_allclose(stripes.variance(arm), 1.0 / ivar, rtol=1e-6)
    plain = read_stripes(products.stripes_bytes)
    # GAIN and RDNOISE are written to 4 decimals: the two agree to ~1e-4
    np.testing.assert_allclose(plain.variance("red"), stripes.variance("red"), rtol=1e-3)


def test_product_registry() -> None:
    names = {reader.name: reader.product for reader in list_product_readers()}
    assert names == {"stripes": "stripes", "cutout": "cutout"}
    assert [r.name for r in list_product_readers("cutout")] == ["cutout"]
    assert get_product_reader("stripes").product == "stripes"
    with pytest.raises(KeyError):
        get_product_reader("nope")
    with pytest.raises(ValueError):
        register_product_reader(get_product_reader("stripes"))
    assert isinstance(get_product_reader("cutout"), ProductReader)


# -- hostile input ---------------------------------------------------------------


def _open(data: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(data))


def _write(hdul: fits.HDUList) -> bytes:
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    return buffer.getvalue()


def _edit(kind: str, edit: Callable[[fits.HDUList], fits.HDUList | None]) -> Callable[[], bytes]:
    def build() -> bytes:
        products = shared()
        hdul = _open(products.stripes_bytes if kind == "stripes" else products.cutout_bytes)
        return _write(edit(hdul) or hdul)

    return build


def _drop(name: str) -> Callable[[fits.HDUList], fits.HDUList]:
    return lambda h: fits.HDUList([hdu for hdu in h if hdu.name != name])


def _set(extname: str, key: str, value) -> Callable[[fits.HDUList], None]:
    return lambda h: h[extname].header.__setitem__(key, value)


def _delete(extname: str, key: str) -> Callable[[fits.HDUList], None]:
    return lambda h: h[extname].header.__delitem__(key)


def _replace(extname: str, data: np.ndarray) -> Callable[[fits.HDUList], None]:
    def edit(hdul: fits.HDUList) -> None:
        hdul[extname].data = data

    return edit


def _blue_as_table(hdul: fits.HDUList) -> fits.HDUList:
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="FLUX", format="E", array=np.ones(5))], name="BLUE"
    )
    return fits.HDUList([hdul[0], table, hdul["RED"]])


def _no_pixel_scale(hdul: fits.HDUList) -> None:
    for hdu in hdul:
        for key in ("PIXSCALE", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            hdu.header.pop(key, None)


def _truncated() -> bytes:
    data = shared().stripes_bytes
    return data[: len(data) // 2]


def _corrupt_gzip() -> bytes:
    data = bytearray(shared().stripes_gz)
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    return bytes(data)


HOSTILE: dict[str, tuple[Callable[[], bytes], Callable, ReadErrorReason]] = {
    "empty": (lambda: b"", read_stripes, R.EMPTY),
    "html_page": (lambda: b"<html><body>404</body></html>", read_stripes, R.NOT_FITS),
    "truncated": (_truncated, read_stripes, R.TRUNCATED),
    "truncated_gzip": (lambda: shared().stripes_gz[:-300], read_stripes, R.BAD_GZIP),
    "corrupt_gzip": (_corrupt_gzip, read_stripes, R.BAD_GZIP),
    "lamost_spectrum_as_stripes": (lambda: lamost_image().data, read_stripes, R.UNKNOWN_LAYOUT),
    "sdss_spectrum_as_stripes": (lambda: sdss_spec().data, read_stripes, R.UNKNOWN_LAYOUT),
    "cutout_as_stripes": (lambda: shared().cutout_bytes, read_stripes, R.UNKNOWN_LAYOUT),
    "stripes_as_cutout": (lambda: shared().stripes_bytes, read_cutout, R.UNKNOWN_LAYOUT),
    "spectrum_as_cutout": (lambda: lamost_image().data, read_cutout, R.UNKNOWN_LAYOUT),
    "no_red_hdu": (_edit("stripes", _drop("RED")), read_stripes, R.MISSING_HDU),
    "blue_is_1d": (
        _edit("stripes", _replace("BLUE", np.ones(4000, np.float32))),
        read_stripes,
        R.SHAPE_MISMATCH,
    ),
    "blue_is_a_table": (_edit("stripes", _blue_as_table), read_stripes, R.SHAPE_MISMATCH),
    "two_row_stripe": (
        _edit("stripes", _replace("RED", np.ones((2, 4000), np.float32))),
        read_stripes,
        R.SHAPE_MISMATCH,
    ),
    "sky_of_wrong_length": (
        _edit("stripes", _replace("RED_SKY", np.ones(100, np.float32))),
        read_stripes,
        R.SHAPE_MISMATCH,
    ),
    "no_crval1": (_edit("stripes", _delete("RED", "CRVAL1")), read_stripes, R.MISSING_KEYWORD),
    "decreasing_wavelength": (
        _edit("stripes", _set("BLUE", "CDELT1", -0.5)),
        read_stripes,
        R.NON_MONOTONIC_WAVELENGTH,
    ),
    "wavelength_in_unknown_unit": (
        _edit("stripes", _set("BLUE", "CUNIT1", "furlong")),
        read_stripes,
        R.BAD_WAVELENGTH,
    ),
    "trace_outside_stripe": (
        _edit("stripes", _set("RED", "TRACEROW", 40.0)),
        read_stripes,
        R.SHAPE_MISMATCH,
    ),
    "all_nan_stripe": (
        _edit("stripes", _replace("BLUE", np.full((15, 4000), np.nan, np.float32))),
        read_stripes,
        R.NO_VALID_FLUX,
    ),
    "no_i_band": (_edit("cutout", _drop("I")), read_cutout, R.MISSING_HDU),
    "bands_of_different_size": (
        _edit("cutout", _replace("R", np.ones((32, 32), np.float32))),
        read_cutout,
        R.SHAPE_MISMATCH,
    ),
    "cutout_band_is_3d": (
        _edit("cutout", _replace("G", np.ones((2, 64, 64), np.float32))),
        read_cutout,
        R.SHAPE_MISMATCH,
    ),
    "no_pixel_scale": (_edit("cutout", _no_pixel_scale), read_cutout, R.MISSING_KEYWORD),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_raises_one_typed_error_naming_the_file(case: str, tmp_path) -> None:
    make, reader, reason = HOSTILE[case]
    path = tmp_path / f"{case}.fits"
    path.write_bytes(make())
    with pytest.raises(SpectrumReadError) as info:
        reader(str(path))
    error = info.value
    assert error.reason is reason, error
    assert error.uri == str(path) and str(path) in str(error)


def test_missing_file_is_not_found(tmp_path) -> None:
    for reader in (read_stripes, read_cutout):
        path = str(tmp_path / "absent.fits")
        with pytest.raises(SpectrumReadError) as info:
            reader(path)
        assert info.value.reason is R.NOT_FOUND and info.value.uri == path


def test_survey_reader_does_not_take_products(products: Products) -> None:
    for data, kind in ((products.stripes_bytes, "STRIPES"), (products.cutout_bytes, "CUTOUT")):
        with pytest.raises(SpectrumReadError) as info:
            read_spectrum(data, uri="product")
        assert info.value.reason is R.UNKNOWN_LAYOUT
        assert f"a {kind} product file, not a 1D spectrum" in info.value.message


@pytest.mark.parametrize("seed", range(16))
def test_random_corruption_never_escapes_the_typed_error(products: Products, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = bytearray(products.stripes_bytes if seed % 2 else products.cutout_bytes)
    header_bytes = 2880 * 3  # hit headers often: that is where parsing can go wrong
    for _ in range(int(rng.integers(1, 30))):
        limit = header_bytes if rng.random() < 0.7 else len(data)
        data[int(rng.integers(0, limit))] = int(rng.integers(0, 256))
    reader = read_stripes if seed % 2 else read_cutout
    try:
        reader(bytes(data))
    except SpectrumReadError:
        pass


# -- batch decoding --------------------------------------------------------------


def test_decode_stripes_gives_one_row_per_uri(products: Products, tmp_path) -> None:
    good = tmp_path / "good.fits"
    good.write_bytes(products.stripes_bytes)
    packed = tmp_path / "good.fits.gz"
    packed.write_bytes(gzip.compress(products.stripes_bytes))
    broken = tmp_path / "broken.fits"
    broken.write_bytes(products.stripes_bytes[:5000])
    spectrum = tmp_path / "spectrum.fits"
    spectrum.write_bytes(lamost_image().data)
    uris = [str(good), None, "", str(tmp_path / "absent.fits"), str(broken), str(spectrum),
            str(packed), float("nan")]  # fmt: skip
    out = decode_stripes(uris)
    assert set(out) == {"stripe_blue", "stripe_red", "status", "error"}
    assert out["stripe_blue"].shape == (8, 15, 4000) and out["stripe_red"].dtype == np.float32
    assert list(out["status"]) == ["ok", "error", "error", "error", "error", "error", "ok", "error"]
    codes = [e.split(":")[0] for e in out["error"]]
    assert codes == ["", "missing_product", "missing_product", "not_found", "truncated",
                     "unknown_layout", "", "missing_product"]  # fmt: skip
    np.testing.assert_array_equal(out["stripe_blue"][0], products.stripes.blue.image)
    np.testing.assert_array_equal(out["stripe_red"][6], products.stripes.red.image)
    assert np.isnan(out["stripe_blue"][1:6]).all() and np.isnan(out["stripe_red"][7]).all()


def test_decode_stripes_windows_centre_on_the_trace(products: Products, tmp_path) -> None:
    path = tmp_path / "s.fits"
    path.write_bytes(products.stripes_bytes)
    out = decode_stripes([str(path)], rows=11, columns=3000)
    assert out["stripe_blue"].shape == (1, 11, 3000) and out["status"][0] == "ok"
    for arm in ("blue", "red"):
        made = getattr(products.stripes, arm)
        start = round(made.trace_row) - 5
        np.testing.assert_array_equal(
            out[f"stripe_{arm}"][0], made.image[start : start + 11, :3000]
        )
        profile = out[f"stripe_{arm}"][0].sum(axis=1)
        assert np.argmax(profile) in (4, 5, 6)  # the trace sits in the middle row
    too_big = decode_stripes([str(path)], rows=15, columns=4500)
    assert too_big["status"][0] == "error" and too_big["error"][0].startswith("shape_mismatch:")


def test_decode_cutouts_gives_one_row_per_uri(products: Products, tmp_path) -> None:
    good = tmp_path / "c.fits"
    good.write_bytes(products.cutout_bytes)
    stripes = tmp_path / "s.fits"
    stripes.write_bytes(products.stripes_bytes)
    out = decode_cutouts([str(good), None, str(stripes), str(tmp_path / "absent.fits")])
    assert set(out) == {"cutout_gri", "status", "error"}
    assert out["cutout_gri"].shape == (4, 3, 64, 64) and out["cutout_gri"].dtype == np.float32
    assert list(out["status"]) == ["ok", "error", "error", "error"]
    assert [e.split(":")[0] for e in out["error"]] == [
        "", "missing_product", "unknown_layout", "not_found"
    ]  # fmt: skip
    np.testing.assert_array_equal(out["cutout_gri"][0], products.cutout.images)
    assert np.isnan(out["cutout_gri"][1:]).all()
    small = decode_cutouts([str(good)], size=32)
    np.testing.assert_array_equal(small["cutout_gri"][0], products.cutout.images[:, 16:48, 16:48])
    large = decode_cutouts([str(good)], size=80)
    assert large["error"][0].startswith("shape_mismatch:")
    assert decode_cutouts([])["cutout_gri"].shape == (0, 3, 64, 64)
