"""Audio modalities: shapes, per-spectrum equivalence of the batched call, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

import raysurvey.modalities.audio as audio_mod
from raysurvey.modalities.registry import compute, get_modality

SHAPES = {
    "code": {"mel": (64, 62), "mfcc": (30, 93), "lfcc": (30, 54)},
    "paper": {"mel": (64, 47), "mfcc": (30, 93), "lfcc": (40, 47)},
}


def reference_transform(name: str, variant: str) -> torch.nn.Module:
    """An independent torchaudio transform with the table's parameters."""
    if name == "mel":
        hop = 60 if variant == "code" else 80
        return torchaudio.transforms.MelSpectrogram(
            16000, n_fft=512, win_length=hop, hop_length=hop, n_mels=64
        )
    if name == "mfcc":
        melkwargs = {"n_fft": 512, "win_length": 50, "hop_length": 40, "n_mels": 64}
        return torchaudio.transforms.MFCC(16000, n_mfcc=30, melkwargs=melkwargs)
    if variant == "code":
        speckwargs = {"n_fft": 512, "hop_length": 60, "center": False}
        return torchaudio.transforms.LFCC(16000, n_lfcc=30, speckwargs=speckwargs)
    return torchaudio.transforms.LFCC(16000, n_lfcc=40, speckwargs={"n_fft": 512, "hop_length": 80})


@pytest.fixture(scope="module")
def flux() -> np.ndarray:
    """Four 4000-pixel spectra of very different scales and shapes, two with NaN gaps.

    Rows 1 and 2 hold exactly flat stretches (a saturated trough; emission lines on a
    clipped floor), so after min-max their quietest frames sit far below 80 dB under
    the batch's loudest frame: a top_db clamp shared across the batch changes them.
    """
    rng = np.random.default_rng(12345)
    x = np.linspace(0.0, 1.0, 4000)

    def continuum(freq: float) -> np.ndarray:
        return 1.0 + 0.3 * np.sin(2 * np.pi * freq * x)

    bright = 1000.0 * (continuum(31.0) + 0.02 * rng.standard_normal(x.size))
    bright[1500:2300] = bright.min() - 200.0
    lines = np.maximum(continuum(3.0) - 1.25, 0.0) + np.exp(-0.5 * ((x - 0.4) / 0.002) ** 2)
    rows = [
        continuum(7.0) + 0.05 * rng.standard_normal(x.size),
        bright,
        0.01 * lines,
        50.0 * (continuum(113.0) + 0.05 * rng.standard_normal(x.size)),
    ]
    out = np.stack(rows).astype(np.float32)
    out[0, 100:140] = np.nan
    out[3, 3000] = np.nan
    return out


def reference_signal(flux: np.ndarray, variant: str) -> np.ndarray:
    """The normalised signal computed one spectrum at a time."""
    rows = [audio_mod.minmax_normalise(row[None, :3700])[0] for row in flux]
    if variant == "code":
        rows = [audio_mod.median_filter(row[None], 9)[0] for row in rows]
    return np.stack(rows)


@pytest.mark.parametrize("variant", ["code", "paper"])
@pytest.mark.parametrize("name", ["mel", "mfcc", "lfcc"])
def test_shapes_and_audio_shape(name: str, variant: str, flux: np.ndarray) -> None:
    out = compute(name, flux, variant=variant)
    assert out.dtype == np.float32
    assert out.shape == (4, *SHAPES[variant][name])
    assert audio_mod.audio_shape(name, variant) == SHAPES[variant][name]
    assert np.isfinite(out).all()


def test_default_variant_is_code(flux: np.ndarray) -> None:
    np.testing.assert_array_equal(compute("lfcc", flux), compute("lfcc", flux, variant="code"))


@pytest.mark.parametrize("variant", ["code", "paper"])
@pytest.mark.parametrize("name", ["mel", "mfcc", "lfcc"])
def test_batched_equals_per_spectrum(name: str, variant: str, flux: np.ndarray) -> None:
    batched = compute(name, flux, variant=variant)
    signal = reference_signal(flux, variant)
    transform = reference_transform(name, variant)
    with torch.inference_mode():
        alone = np.stack([transform(torch.from_numpy(row)).numpy() for row in signal])
    atol = 1e-5 * float(np.abs(alone).max())
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("name", ["mfcc", "lfcc"])
def test_flat_batch_shares_top_db_clamp(name: str, flux: np.ndarray) -> None:
    """Why [B, 1, N]: a flat [B, N] input gets one top_db clamp across the whole batch."""
    signal = reference_signal(flux, "code")
    transform = reference_transform(name, "code")
    with torch.inference_mode():
        alone = np.stack([transform(torch.from_numpy(row)).numpy() for row in signal])
        flat = transform(torch.from_numpy(signal)).numpy()
    atol = 1e-5 * float(np.abs(alone).max())
    np.testing.assert_allclose(flat[[0, 3]], alone[[0, 3]], rtol=1e-5, atol=atol)
    assert np.abs(flat[1:3] - alone[1:3]).max() > 1.0  # the quiet rows are clamped higher


def test_minmax_normalise() -> None:
    rng = np.random.default_rng(0)
    flux = rng.normal(5.0, 3.0, size=(3, 200)).astype(np.float32)
    flux[1] = 7.0  # constant row
    flux[2, 10:20] = np.nan
    flux[2, 50] = np.inf
    out = audio_mod.minmax_normalise(flux)
    assert out.dtype == np.float32 and out.shape == flux.shape
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    for row in (0, 2):
        assert out[row].min() == 0.0 and out[row].max() == 1.0
    np.testing.assert_array_equal(out[1], 0.0)
    expected = (flux[0] - flux[0].min()) / (flux[0].max() - flux[0].min())
    np.testing.assert_allclose(out[0], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(audio_mod.minmax_normalise(np.full((1, 5), np.nan)), 0.0)


def test_median_filter() -> None:
    x = np.array([[1.0, 5.0, 2.0, 8.0, 3.0]])
    np.testing.assert_array_equal(audio_mod.median_filter(x, 3), [[1.0, 2.0, 5.0, 3.0, 3.0]])
    np.testing.assert_array_equal(audio_mod.median_filter(x, 1), x)
    spike = np.full((2, 40), 0.5, dtype=np.float32)
    spike[0, 20] = 1.0
    spike[1, 5] = 0.0
    out = audio_mod.median_filter(spike, 9)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 4:-4], 0.5)  # spikes removed away from the edges
    np.testing.assert_array_equal(out[:, :4], 0.5)  # zero padding: 4 of 9 are zero at the edge
    with pytest.raises(ValueError):
        audio_mod.median_filter(x, 4)


def test_median_filter_option(flux: np.ndarray) -> None:
    paper_filtered = compute("mel", flux, variant="paper", median_filter=9)
    assert not np.allclose(paper_filtered, compute("mel", flux, variant="paper"))
    code_unfiltered = compute("mel", flux, variant="code", median_filter=0)
    signal = audio_mod.minmax_normalise(flux[:, :3700])
    with torch.inference_mode():
        expected = reference_transform("mel", "code")(torch.from_numpy(signal[:, None]))
    np.testing.assert_allclose(code_unfiltered, expected.squeeze(1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["mel", "mfcc", "lfcc", "audio"])
def test_unknown_variant_raises(name: str, flux: np.ndarray) -> None:
    with pytest.raises(ValueError):
        compute(name, flux, variant="nope")
    with pytest.raises(ValueError):
        get_modality(name).fn({"flux": flux}, variant="nope")  # bypassing compute's check


def test_audio_shape_rejects_unknown_names() -> None:
    with pytest.raises(ValueError):
        audio_mod.audio_shape("mel", "nope")
    with pytest.raises(ValueError):
        audio_mod.audio_shape("chroma")


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_audio_dict_equals_separate_calls(variant: str, flux: np.ndarray) -> None:
    out = compute("audio", {"flux": flux}, variant=variant)
    assert set(out) == {"mel", "mfcc", "lfcc"}
    for name, value in out.items():
        np.testing.assert_array_equal(value, compute(name, flux, variant=variant))


def test_short_spectra_and_transforms_cached() -> None:
    flux = np.random.default_rng(1).random((2, 2000)).astype(np.float32)
    out = compute("audio", flux)
    for name, value in out.items():
        assert value.shape == (2, *audio_mod.audio_shape(name, "code", 2000))
    assert audio_mod.build_transform("mel", "code") is audio_mod.build_transform("mel", "code")
