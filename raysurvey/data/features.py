"""Compute the requested modalities for a batch: the body of the pipeline's actors.

A callable class so that a Ray actor builds its state once (torchaudio transforms,
colormap tables, thread settings) and then serves many batches. Pure numpy/torch:
tests call it directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from raysurvey import modalities
from raysurvey.data.decode import STATUS_OK
from raysurvey.modalities.batch import FLUX, SURVEY

#: Composite modalities and the columns they expand to.
COMPOSITES = {"audio": ("mel", "mfcc", "lfcc")}
#: Decoded 2D inputs (CONVENTIONS.md batch keys) and the product files they come from.
RAW_2D = {"stripe_blue": "stripes", "stripe_red": "stripes", "cutout_gri": "cutout"}
#: Which product files a modality needs decoded.
PRODUCTS = {"stripes": ("stripes",), "photometry": ("cutout",)}


def products_for(names: Sequence[str]) -> tuple[str, ...]:
    """The 2D product files the modalities ``names`` read ("stripes", "cutout")."""
    return tuple(dict.fromkeys(p for n in names for p in PRODUCTS.get(n, ())))


def output_columns(names: Sequence[str]) -> list[str]:
    """Column names the modalities ``names`` produce (composites expanded)."""
    columns: list[str] = []
    for name in names:
        columns.extend(COMPOSITES.get(name, (name,)))
    return columns


def check_modalities(names: Sequence[str]) -> list[str]:
    """Validate modality names early, with the list of known ones in the error."""
    known = modalities.list_modalities()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; known: {', '.join(known)}")
    if not names:
        raise ValueError("no modalities requested")
    return list(names)


class ComputeModalities:
    """Turn decoded rows (``flux`` on the grid, ``status``) into modality columns.

    Rows whose ``status`` is not "ok" get all-zero modality values: Ray Data's tensor
    columns cannot hold nulls in numpy batches, so the ``status`` column is what
    marks them (written Parquet turns them into nulls, see ``raysurvey.data.write``).

    Parameters
    ----------
    names : sequence of str
        Modality names (``modalities.list_modalities()``).
    options : mapping, optional
        Per-modality keyword options, e.g. ``{"map2d": {"variant": "spectromer"}}``.
    keep_flux : bool
        Keep the grid ``flux`` column in the output (dropped by default: it is big
        and every modality has been computed from it).
    torch_threads : int
        Threads torch may use inside this actor (1: one actor per CPU).
    """

    def __init__(
        self,
        names: Sequence[str],
        options: Mapping[str, Mapping] | None = None,
        keep_flux: bool = False,
        torch_threads: int = 1,
    ):
        import torch

        torch.set_num_threads(torch_threads)
        self.names = check_modalities(names)
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.keep_flux = keep_flux

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        flux = np.asarray(batch[FLUX], dtype=np.float32)
        ok = np.asarray(batch["status"]) == STATUS_OK
        inputs = {FLUX: flux}
        if SURVEY in batch:
            inputs[SURVEY] = np.asarray(batch[SURVEY])
        for key in RAW_2D:
            if key in batch:
                inputs[key] = np.asarray(batch[key], dtype=np.float32)
        # the raw stripes and cutouts are big and every modality has been made from them
        out = {k: v for k, v in batch.items() if (k != FLUX or self.keep_flux) and k not in RAW_2D}
        for name in self.names:
            result = modalities.compute(name, inputs, **self.options.get(name, {}))
            produced = result if isinstance(result, dict) else {name: result}
            for column, values in produced.items():
                values = np.ascontiguousarray(values)
                values[~ok] = 0
                out[column] = values
        return out


def _coerce(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_options(items: Sequence[str]) -> dict[str, dict]:
    """``["map2d.variant=spectromer", "flux1d.median_filter=9"]`` -> per-modality options."""
    options: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, option = key.partition(".")
        if not (sep and dot and name and option):
            raise ValueError(f"modality option {item!r} is not of the form NAME.OPTION=VALUE")
        options.setdefault(name, {})[option] = _coerce(value)
    return options
