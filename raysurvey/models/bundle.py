"""Model bundles: trained weights plus everything needed to use them, at one URI.

A bundle is a directory (local path or any fsspec URI, e.g. ``s3://bucket/run/best``):

- ``model.safetensors``: the weights (a plain state dict; DDP's ``module.`` is removed);
- ``bundle.json``: the registered model name and config (``create_model(name,
  **config)`` rebuilds the network), the task and its label list (class names, or
  target names for regression, with their normalisation), the modalities the model
  reads and the options they were computed with, provenance (raysurvey version,
  creation time, free-form metadata such as the run id and metrics), the weights'
  SHA-256 and a version hash over weights and metadata;
- optionally (format 2) ``calibration.safetensors`` and a ``calibration`` section in
  ``bundle.json``: the probability scaling, the out-of-distribution model and the
  thresholds of the catalog's warning bits (``raysurvey.calibration``,
  ``save_calibration``). Format-1 bundles (no calibration) still load; their catalog
  rows get uncalibrated probabilities, a null ``ood_score`` and no LOW_CONFIDENCE /
  OUT_OF_DISTRIBUTION bits (``raysurvey calibrate-bundle`` adds a calibration).

``bundle.json`` is written last, so a directory without it is an unfinished write;
``load_bundle`` refuses it, and refuses weights whose checksum does not match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

import raysurvey
from raysurvey.models._registry import config_dict, create_model

FORMAT = "raysurvey-bundle"
FORMAT_VERSION = 2  # 2: optional calibration section and file (1 still reads)
MANIFEST = "bundle.json"
WEIGHTS = "model.safetensors"
CALIBRATION = "calibration.safetensors"
TASKS = ("classify", "redshift", "stellar_params")


class BundleError(RuntimeError):
    """A bundle that cannot be written or read; the message names the URI."""

    def __init__(self, uri: str, message: str):
        self.uri = uri
        super().__init__(f"{uri}: {message}")


@dataclass
class Bundle:
    """A loaded bundle: the model in eval mode and what it was trained for."""

    model: nn.Module
    model_name: str
    model_config: dict[str, Any]
    task: str
    labels: list[str]
    modalities: dict[str, dict[str, Any]]
    version: str
    uri: str
    target_normalisation: dict[str, list[float]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    raysurvey_version: str = ""
    #: The ``calibration`` section of bundle.json (None: an uncalibrated bundle).
    calibration: dict[str, Any] | None = None
    #: Its arrays (e.g. the OOD model's class means and precision matrix), numpy.
    calibration_tensors: dict[str, Any] = field(default_factory=dict)


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def _join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def _version(weights_sha: str, manifest: dict) -> str:
    stable = {k: v for k, v in manifest.items() if k not in ("version", "created_at")}
    text = weights_sha + json.dumps(stable, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _modality_options(model: nn.Module, given: dict[str, dict], uri: str) -> dict[str, dict]:
    """The model's own requirements (e.g. the audio variant) merged with ``given``."""
    required = {m: {} for m in model.modalities}
    if hasattr(model, "modality_options"):
        required.update(model.modality_options())
    stray = sorted(set(given) - set(required))
    if stray:
        raise BundleError(uri, f"options given for modalities the model does not read: {stray}")
    merged = {}
    for name, options in required.items():
        extra = dict(given.get(name, {}))
        for key, value in options.items():
            if key in extra and extra[key] != value:
                raise BundleError(
                    uri, f"{name}: option {key}={extra[key]!r} contradicts the model's {value!r}"
                )
        merged[name] = options | extra
    return merged


def save_bundle(
    model: nn.Module,
    uri: str,
    *,
    labels: list[str],
    task: str = "classify",
    modalities: dict[str, dict[str, Any]] | None = None,
    target_normalisation: dict[str, list[float]] | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Write ``model`` as a bundle at ``uri``; returns the bundle's version hash.

    ``labels``: the class names in output order (classification) or the target names
    (regression, with ``target_normalisation={"mean": [...], "std": [...]}`` giving how
    targets were scaled). ``modalities``: options each input modality was computed with
    (default: none beyond the defaults), checked against what the model reads.
    """
    model = _unwrap(model)
    name = getattr(model, "model_name", None)
    if name is None:
        raise BundleError(uri, "the model has no registered name: build it with create_model")
    if task not in TASKS:
        raise BundleError(uri, f"unknown task {task!r}; known: {TASKS}")
    labels = [str(label) for label in labels]
    head = getattr(model, "head", None)
    if head is not None and head.out_features != len(labels):
        raise BundleError(
            uri, f"the model has {head.out_features} outputs but {len(labels)} labels were given"
        )
    if task != "classify" and target_normalisation is not None:
        for key in ("mean", "std"):
            if len(target_normalisation.get(key, [])) != len(labels):
                raise BundleError(uri, f"target_normalisation[{key!r}] needs one value per target")
    modalities = _modality_options(model, modalities or {}, uri)

    fs, path = fsspec.core.url_to_fs(uri)
    manifest_path = _join(path, MANIFEST)
    if fs.exists(manifest_path) and not overwrite:
        raise BundleError(uri, "a bundle already exists here (pass overwrite=True to replace it)")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = save_safetensors(state, metadata={"format": FORMAT})
    weights_sha = hashlib.sha256(weights).hexdigest()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": name,
        "model_config": config_dict(model),
        "task": task,
        "labels": labels,
        "target_normalisation": target_normalisation,
        "modalities": modalities,
        "weights": WEIGHTS,
        "weights_sha256": weights_sha,
        "parameters": sum(p.numel() for p in model.parameters()),
        "metadata": metadata or {},
        "raysurvey_version": raysurvey.__version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    manifest["version"] = _version(weights_sha, manifest)
    fs.makedirs(path, exist_ok=True)
    if fs.exists(manifest_path):
        fs.rm(manifest_path)  # an old manifest must never describe the new weights
    with fs.open(_join(path, WEIGHTS), "wb") as f:
        f.write(weights)
    with fs.open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest["version"]


def read_manifest(uri: str) -> dict[str, Any]:
    """The bundle's ``bundle.json`` (cheap: no weights are read)."""
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        with fs.open(_join(path, MANIFEST), "r") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise BundleError(uri, f"not a model bundle (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise BundleError(uri, f"{MANIFEST} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(uri, f"{MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(
            uri,
            f"bundle format {manifest['format_version']} is newer than this raysurvey "
            f"reads ({FORMAT_VERSION}); upgrade raysurvey",
        )
    return manifest


def load_bundle(
    uri: str, device: str | torch.device = "cpu", prepare_inference: bool = False
) -> Bundle:
    """Read a bundle from a local path or URI; the model comes back in eval mode.

    ``prepare_inference``: build the model's inference fast paths from the loaded
    weights (``raysurvey.models.prepare_inference``: e.g. spec_cnn's batch-norm folded
    into its convolutions, ~2x faster on one CPU thread, same logits to float32
    rounding). They run only in eval mode without autograd and never change the state
    dict; ``model.train()`` drops them, so a loaded bundle can still be fine-tuned.
    """
    manifest = read_manifest(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        weights = fs.cat_file(_join(path, manifest["weights"]))
    except FileNotFoundError:
        raise BundleError(uri, f"weights file {manifest['weights']} is missing") from None
    if hashlib.sha256(weights).hexdigest() != manifest["weights_sha256"]:
        raise BundleError(uri, f"{manifest['weights']} does not match its checksum (corrupt?)")
    state = load_safetensors(weights)
    calibration, calibration_tensors = _read_calibration(uri, fs, path, manifest)
    model = create_model(manifest["model_name"], **manifest["model_config"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(uri, f"weights do not fit {manifest['model_name']}: {exc}") from None
    model.to(device).eval()
    if prepare_inference:
        from raysurvey.models.inputs import prepare_inference as prepare

        prepare(model)
    return Bundle(
        model=model,
        model_name=manifest["model_name"],
        model_config=manifest["model_config"],
        task=manifest["task"],
        labels=list(manifest["labels"]),
        modalities=manifest["modalities"],
        version=manifest["version"],
        uri=uri,
        target_normalisation=manifest.get("target_normalisation"),
        metadata=manifest.get("metadata", {}),
        created_at=manifest.get("created_at", ""),
        raysurvey_version=manifest.get("raysurvey_version", ""),
        calibration=calibration,
        calibration_tensors=calibration_tensors,
    )


def _read_calibration(uri: str, fs, path: str, manifest: dict):
    calibration = manifest.get("calibration")
    if not calibration:
        return None, {}
    name = calibration.get("file")
    if not name:
        return calibration, {}
    try:
        data = fs.cat_file(_join(path, name))
    except FileNotFoundError:
        raise BundleError(uri, f"calibration file {name} is missing") from None
    if hashlib.sha256(data).hexdigest() != calibration.get("sha256"):
        raise BundleError(uri, f"{name} does not match its checksum (corrupt?)")
    tensors = {k: v.numpy() for k, v in load_safetensors(data).items()}
    return calibration, tensors


def save_calibration(
    uri: str,
    calibration: dict[str, Any],
    tensors: dict[str, Any] | None = None,
    out: str | None = None,
) -> str:
    """Store ``calibration`` (the JSON section) and its arrays in the bundle at ``uri``,
    or in a copy of it at ``out``; returns the new version hash (the calibration is
    part of what the version covers, so a recalibrated bundle is a new version and a
    catalog planned with the old one is not resumed with it).
    """
    manifest = read_manifest(uri)
    if manifest["task"] != "classify":
        raise BundleError(uri, f"only classifiers are calibrated, not task {manifest['task']}")
    fs, path = fsspec.core.url_to_fs(uri)
    out = out or uri
    out_fs, out_path = fsspec.core.url_to_fs(out)
    same = out_fs.protocol == fs.protocol and out_path.rstrip("/") == path.rstrip("/")
    if not same:
        weights = fs.cat_file(_join(path, manifest["weights"]))
        if hashlib.sha256(weights).hexdigest() != manifest["weights_sha256"]:
            raise BundleError(uri, f"{manifest['weights']} does not match its checksum")
        out_fs.makedirs(out_path, exist_ok=True)
        if out_fs.exists(_join(out_path, MANIFEST)):
            out_fs.rm(_join(out_path, MANIFEST))
        with out_fs.open(_join(out_path, manifest["weights"]), "wb") as f:
            f.write(weights)
    section = dict(calibration)
    if tensors:
        arrays = {
            k: torch.from_numpy(np.ascontiguousarray(np.asarray(v, dtype=np.float32)))
            for k, v in tensors.items()
        }
        data = save_safetensors(arrays, metadata={"format": FORMAT})
        section["file"] = CALIBRATION
        section["sha256"] = hashlib.sha256(data).hexdigest()
    else:
        section.pop("file", None)
        section.pop("sha256", None)
    manifest = dict(manifest)
    manifest["calibration"] = json.loads(json.dumps(section, default=_plain_json))
    manifest["format_version"] = FORMAT_VERSION
    manifest["version"] = _version(manifest["weights_sha256"], manifest)
    manifest_path = _join(out_path, MANIFEST)
    if out_fs.exists(manifest_path):
        out_fs.rm(manifest_path)  # never a manifest describing a half-written calibration
    if tensors:
        with out_fs.open(_join(out_path, CALIBRATION), "wb") as f:
            f.write(data)
    with out_fs.open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest["version"]


def _plain_json(value):
    return np.asarray(value).tolist()
