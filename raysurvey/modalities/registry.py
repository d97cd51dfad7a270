"""String-keyed registry of modalities: every choice a sweep makes is a name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raysurvey.modalities.batch import Batch, as_batch

#: A modality maps a batch (flux [B, N] at least) to an array, or to a dict of
#: arrays for composite modalities such as ``audio``.
ModalityFn = Callable[..., "np.ndarray | dict[str, np.ndarray]"]


@dataclass(frozen=True)
class Modality:
    """A registered modality: its function, variants and output description."""

    name: str
    fn: ModalityFn
    variants: tuple[str, ...] = ()
    default_variant: str | None = None
    description: str = ""


_REGISTRY: dict[str, Modality] = {}


def register(
    name: str,
    *,
    variants: tuple[str, ...] = (),
    default_variant: str | None = None,
    description: str = "",
) -> Callable[[ModalityFn], ModalityFn]:
    """Decorator registering ``fn(batch: dict, **options)`` under ``name``."""

    def wrap(fn: ModalityFn) -> ModalityFn:
        if name in _REGISTRY:
            raise ValueError(f"modality {name!r} is already registered")
        _REGISTRY[name] = Modality(name, fn, variants, default_variant, description)
        return fn

    return wrap


def list_modalities() -> list[str]:
    """Names of the registered modalities, in registration order."""
    return list(_REGISTRY)


def get_modality(name: str) -> Modality:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; known: {', '.join(_REGISTRY)}") from None


def compute(name: str, batch: Batch | np.ndarray, **options) -> np.ndarray | dict[str, np.ndarray]:
    """Compute modality ``name`` for a whole batch.

    Parameters
    ----------
    name : str
        A name from ``list_modalities()``.
    batch : dict or numpy.ndarray
        The batch dict (``flux`` [B, N] on the common grid, plus e.g. ``survey``) or a
        float [B, N] array of grid flux.
    **options
        Passed to the modality, e.g. ``variant="paper"``.
    """
    modality = get_modality(name)
    variant = options.get("variant")
    if variant is not None and modality.variants and variant not in modality.variants:
        raise ValueError(
            f"modality {name!r} has variants {', '.join(modality.variants)}, not {variant!r}"
        )
    return modality.fn(as_batch(batch), **options)
