"""What a DINO backbone was pretrained on, carried into its fine-tunes.

A backbone learns the images it was shown; fine-tuning (train, sweeps, the linear
probe) must draw its inputs the same way, so the pretraining encoding is read from the
backbone's ``dino.json`` and adopted wherever the user did not choose otherwise.
"""

from __future__ import annotations

import json

#: The provenance file ``export_backbone`` writes beside the weights.
PROVENANCE_FILE = "dino.json"
#: Encodings pretraining uses unless told otherwise. ``map2d``'s default colours are
#: absolute flux (per survey): self-distillation then learns brightness, which every
#: view shares, instead of spectral shape (docs/training.md, "DINO"); the authors'
#: per-spectrum ``normalised`` variant leaves shape as what the views have in common.
PRETRAIN_MODALITY_DEFAULTS = {"map2d": {"variant": "normalised"}}


def pretraining_encoding(source: str) -> dict[str, dict] | None:
    """{modality: options} a DINO backbone was pretrained on (its dino.json), so that a
    fine-tune draws the same images; None for weights without one (hub ids, other dirs)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    provenance = f"{path.rstrip('/')}/{PROVENANCE_FILE}"
    if not fs.exists(provenance):
        return None
    with fs.open(provenance, "r") as f:
        config = json.load(f)["config"]
    modality = config["model_config"].get("modality")
    if modality is None:
        return None
    return {modality: dict(config.get("modality_options", {}).get(modality, {}))}


def adopt_pretraining_encoding(
    options: dict[str, dict], encoding: dict[str, dict] | None
) -> tuple[dict[str, dict], list[str]]:
    """``options`` (the user's) completed with the pretraining ``encoding`` where they say
    nothing; returns the merged options and a line for each option adopted or overridden."""
    merged = {name: dict(values) for name, values in options.items()}
    notes = []
    for name, values in (encoding or {}).items():
        target = merged.setdefault(name, {})
        for key, value in values.items():
            if key not in target:
                target[key] = value
                notes.append(f"{name}.{key}={value} (as in pretraining)")
            elif target[key] != value:
                notes.append(f"{name}.{key}={target[key]} overrides pretraining's {value}")
    return merged, notes
