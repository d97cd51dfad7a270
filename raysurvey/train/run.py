"""Driver side of a training run: split the manifest, stream each split through the
pipeline, fit a ``TorchTrainer``, export the best checkpoint as a model bundle.

The same call trains on a laptop (CPU workers sharing the cores with the pipeline's
decode tasks and modality actors) and on GPU nodes (``use_gpu``; bf16 autocast).
Rerunning with the same ``storage`` and ``name`` resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from raysurvey.calibration import MIN_CALIBRATION_ROWS
from raysurvey.data.pipeline import PipelineConfig
from raysurvey.models import create_model
from raysurvey.models.bundle import save_bundle
from raysurvey.train.data import DataSpec, training_tables
from raysurvey.train.feature_store import check_options, load_features, rows_for
from raysurvey.train.loop import STATE_FILE, LoopConfig, train_loop
from raysurvey.train.presets import (
    DEFAULT_PRESET,
    balance_target,
    describe_balance,
    get_preset,
    weight_vector,
)
from raysurvey.train.pretraining_encoding import adopt_pretraining_encoding, pretraining_encoding
from raysurvey.train.split_data import TRAIN_PIPELINE, build_split_dataset
from raysurvey.train.splits import balance_by_replication


@dataclass(frozen=True)
class RunSpec:
    manifest: str | tuple[str, ...]  # one or several (see train.data.DataSpec)
    model: str
    storage: str
    name: str
    labels: str | None = None  # None: the preset's label set, else stellar8
    task: str = "classify"
    model_config: dict = field(default_factory=dict)
    modality_options: dict = field(default_factory=dict)
    preset: str = DEFAULT_PRESET
    manifest_weights: tuple[float, ...] | None = None  # per manifest, training split
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    patience: int | None = None
    balance_to: int | str | None = None  # None: the preset's; 0: off; N or "largest"
    min_snr: float | None = None  # None: the preset's cut
    snr_column: str | None = None  # None: the preset's (snr_i unless it says otherwise)
    class_weights: dict | None = None  # label -> loss weight; None: the preset's, {}: none
    recalibrate_bn: bool | None = None  # None: the preset's
    augment: bool = False  # flux1d augmentation in training (train/augment.py)
    split_seed: int = 0
    num_workers: int = 2
    cpus_per_worker: float = 0.5
    use_gpu: bool = False
    max_failures: int = 1
    cache_features: bool | None = None  # None: when the modalities fit the object store
    bundle_out: str | None = None
    features: str | None = None  # a feature store (feature_store.py): no decoding
    checkpoints_to_keep: int = 3
    callbacks: tuple = ()  # Ray Train callbacks, e.g. Tune's TuneReportCallback
    pipeline: PipelineConfig = TRAIN_PIPELINE
    fail_at_epoch: int | None = None  # test hook (see loop._maybe_fail)
    fail_marker: str | None = None
    #: classifiers: fit calibration, OOD score and warning thresholds on the validation
    #: split into the exported bundle (raysurvey.calibration.calibrate_bundle). None:
    #: yes, unless trained from a feature store (sweep trials: calibrate the bundle you
    #: keep with `raysurvey calibrate-bundle`)
    calibrate: bool | None = None


def _model_io(spec: RunSpec, n_outputs: int) -> tuple[dict, tuple[str, ...], dict]:
    """The model config, the modalities it reads and the options they need."""
    config = {"num_classes": n_outputs} | dict(spec.model_config)
    # the modalities do not depend on the weights, and from_pretrained refuses the meta
    # device: probe without them (the workers load them)
    probe = {k: v for k, v in config.items() if k != "pretrained"}
    with torch.device("meta"):
        model = create_model(spec.model, **probe)
    required = model.modality_options() if hasattr(model, "modality_options") else {}
    if "stripes" in model.modalities and "stripes" not in required:
        from raysurvey.modalities.stripes import options_for_width

        required = dict(required) | {"stripes": options_for_width(model.config.stripe_width)}
    given = spec.modality_options
    if config.get("pretrained"):  # draw the images as the backbone's pretraining did
        encoding = pretraining_encoding(config["pretrained"])
        given, notes = adopt_pretraining_encoding(given, encoding)
        for note in notes:
            print(f"pretrained: {config['pretrained']}: {note}", flush=True)
    options = {m: dict(required.get(m, {})) | dict(given.get(m, {})) for m in model.modalities}
    return config, tuple(model.modalities), options


def stored_split_dataset(features: pa.Table, table: pa.Table, label_columns, rows_per_block: int):
    """A split as a Ray Dataset of precomputed modality rows (see feature_store.py)."""
    import ray.data

    rows = rows_for(features, table, label_columns)
    step = max(1, rows_per_block)
    blocks = [rows.slice(i, step) for i in range(0, rows.num_rows, step)]
    return ray.data.from_arrow(blocks or [rows])


def worker_scaling(spec):
    """Ray Train's ScalingConfig for ``spec``'s workers (``num_workers``, ``use_gpu``,
    ``cpus_per_worker``; a whole GPU each when used), shared by every trainer here."""
    import ray.train

    return ray.train.ScalingConfig(
        num_workers=spec.num_workers,
        use_gpu=spec.use_gpu,
        resources_per_worker={"CPU": spec.cpus_per_worker} | ({"GPU": 1} if spec.use_gpu else {}),
    )


def absolute_uri(uri: str) -> str:
    """Ray Train's storage must be absolute: a relative local path is made absolute."""
    return uri if "://" in uri else os.path.abspath(uri)


def with_absolute_weights(model_config: dict) -> dict:
    """``pretrained`` as a local directory made absolute: Ray Train workers run in another
    working directory. Hub ids and URIs are left as they are."""
    source = model_config.get("pretrained")
    if not source or "://" in source or not os.path.isdir(source):
        return model_config
    return dict(model_config) | {"pretrained": os.path.abspath(source)}


def fit(spec: RunSpec) -> dict:
    """Train, export the best checkpoint as a bundle, return a summary dict."""
    import ray.train
    from ray.train.torch import TorchTrainer

    spec = dataclasses.replace(
        spec,
        storage=absolute_uri(spec.storage),
        model_config=with_absolute_weights(spec.model_config),
    )
    preset = get_preset(spec.preset)
    spec = dataclasses.replace(
        spec,
        labels=spec.labels or preset.labels or "stellar8",
        min_snr=spec.min_snr if spec.min_snr is not None else preset.min_snr,
        snr_column=spec.snr_column or preset.snr_column,
        class_weights=preset.class_weights if spec.class_weights is None else spec.class_weights,
    )
    balance = preset.balance_to if spec.balance_to is None else spec.balance_to
    data = training_tables(
        DataSpec(
            manifest=spec.manifest,
            manifest_weights=spec.manifest_weights,
            labels=spec.labels,
            task=spec.task,
            split_seed=spec.split_seed,
            min_snr=spec.min_snr,
            snr_column=spec.snr_column,
        )
    )
    balance_line = _balance(data, balance, spec.split_seed)
    class_weights = (
        weight_vector(spec.class_weights, data.label_names) if spec.task == "classify" else None
    )
    recalibrate_bn = preset.recalibrate_bn if spec.recalibrate_bn is None else spec.recalibrate_bn
    model_config, modalities, options = _model_io(spec, len(data.label_names))
    loop_settings = dict(
        optimizer=spec.optimizer or preset.optimizer,
        lr=spec.lr if spec.lr is not None else preset.lr,
        weight_decay=spec.weight_decay if spec.weight_decay is not None else preset.weight_decay,
        batch_size=spec.batch_size or preset.batch_size,
        epochs=spec.epochs or preset.epochs,
        patience=spec.patience if spec.patience is not None else preset.patience,
        recalibrate_bn=recalibrate_bn,
    )
    print(_settings_line(spec, loop_settings, balance, modalities, data), flush=True)
    print(f"balancing: {balance_line}", flush=True)
    label_columns = ["label"] if spec.task == "classify" else ["target", "class"]
    if spec.features:
        check_options(spec.features, options)
        store = load_features(spec.features, ["uri", "status", *modalities])
        datasets = {
            split: stored_split_dataset(
                store, data.splits[split], label_columns, spec.pipeline.decode_batch_size
            )
            for split in ("train", "val")
        }
    else:
        datasets = {
            split: build_split_dataset(
                data.splits[split], modalities, options, label_columns, spec.pipeline
            )
            for split in ("train", "val")
        }
    if spec.features:
        print(f"caching: modalities read from the feature store {spec.features}", flush=True)
    else:
        n_train = data.splits["train"].num_rows
        datasets = _cache(datasets, spec.cache_features, modalities, n_train)
    loop = LoopConfig(
        model=spec.model,
        model_config=model_config,
        modalities=modalities,
        task=spec.task,
        label_names=tuple(data.label_names),
        target_normalisation=data.target_normalisation,
        **loop_settings,
        class_weights=class_weights,
        augment=spec.augment,
        seed=spec.split_seed,
        fail_at_epoch=spec.fail_at_epoch,
        fail_marker=spec.fail_marker,
    )
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=dataclasses.asdict(loop),
        scaling_config=worker_scaling(spec),
        run_config=ray.train.RunConfig(
            name=spec.name,
            storage_path=spec.storage,
            failure_config=ray.train.FailureConfig(max_failures=spec.max_failures),
            callbacks=list(spec.callbacks),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=spec.checkpoints_to_keep,
                checkpoint_score_attribute="val_score",
                checkpoint_score_order="max",
            ),
        ),
        datasets=datasets,
    )
    result = trainer.fit()
    best_checkpoint, best_metrics = max(
        result.best_checkpoints, key=lambda pair: pair[1].get("val_score", -1e9)
    )
    summary = {
        "run": spec.name,
        "storage": spec.storage,
        "last": _plain(result.metrics),
        "best": _plain(best_metrics),
        "label_names": data.label_names,
        "counts": data.counts,
        "excluded": data.excluded,
        "bundle": None,
    }
    if spec.bundle_out:
        with best_checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)
        model = create_model(spec.model, **model_config)
        model.load_state_dict(state["model"])
        version = save_bundle(
            model.eval(),
            spec.bundle_out,
            labels=data.label_names,
            task=spec.task,
            modalities=options,
            target_normalisation=data.target_normalisation,
            metadata={
                "run": spec.name,
                "storage": spec.storage,
                "manifest": spec.manifest,
                "label_set": spec.labels,
                "split_seed": spec.split_seed,
                "min_snr": spec.min_snr,
                "snr_column": spec.snr_column,
                "snr_bins": list(preset.snr_bins) if preset.snr_bins else None,
                "class_weights": dict(zip(data.label_names, class_weights, strict=True))
                if class_weights
                else None,
                "recalibrate_bn": recalibrate_bn,
                "augment": spec.augment,
                "preset": spec.preset,
                "epoch": best_metrics.get("epoch"),
                "val_score": best_metrics.get("val_score"),
                "initialised_from": model.config.__dict__.get("initialised_from"),
            },
            overwrite=True,
        )
        summary["bundle"] = {"uri": spec.bundle_out, "version": version}
        calibrate = spec.calibrate if spec.calibrate is not None else not spec.features
        n_val = data.splits["val"].num_rows
        if calibrate and spec.task == "classify" and n_val < MIN_CALIBRATION_ROWS:
            print(
                f"calibrate: skipped, {n_val} validation rows (fewer than "
                f"{MIN_CALIBRATION_ROWS}); the bundle's probabilities are uncalibrated",
                flush=True,
            )
        elif calibrate and spec.task == "classify":
            from raysurvey.calibration import calibrate_bundle

            calibration = calibrate_bundle(spec.bundle_out, spec.manifest)
            summary["bundle"]["version"] = calibration["version"]
            summary["calibration"] = calibration["validation"] | {
                "method": calibration["probabilities"]["method"],
                "thresholds": calibration["thresholds"],
            }
    return summary


#: Auto caching keeps a run's modalities in the object store when they take at most
#: this share of it (estimated from the validation split, computed first).
CACHE_SHARE = 0.25


def _balance(data, balance_to, seed: int) -> str:
    """Replicate the training split's classes (``presets.balance_target``); the line
    that says what it did."""
    before = data.counts["train"]
    target = balance_target(balance_to, before)
    if target is None:
        return f"off ({', '.join(f'{k} {n}' for k, n in before.items())} training rows)"
    train = data.splits["train"]
    labels = np.asarray(train.column("label_name").to_pylist())
    rows = balance_by_replication(labels, target, seed)
    data.splits["train"] = train.take(pa.array(rows, pa.int64()))
    values, n = np.unique(labels[rows], return_counts=True)
    data.counts["train"] = {str(v): int(c) for v, c in zip(values, n, strict=True)}
    return f"to {target} rows a class ({balance_to}): " + describe_balance(
        before, data.counts["train"]
    )


def _settings_line(spec: RunSpec, loop: dict, balance, modalities, data) -> str:
    """The run's effective settings in one line (preset values with flags applied)."""
    patience = loop["patience"]
    extra = [f"S/N {spec.snr_column} > {spec.min_snr:g}"] if spec.min_snr is not None else []
    extra += [f"class weights {spec.class_weights}"] if spec.class_weights else []
    extra += ["BatchNorm re-estimated each epoch"] if loop["recalibrate_bn"] else []
    rows = ", ".join(f"{k} {t.num_rows}" for k, t in data.splits.items())
    cache = {None: "auto", True: "on", False: "off"}[spec.cache_features]
    return (
        f"settings: {spec.model} on {spec.labels} ({spec.task}), preset {spec.preset}: "
        f"{loop['epochs']} epochs, batch {loop['batch_size']}, {loop['optimizer']} "
        f"lr {loop['lr']:g} wd {loop['weight_decay']:g}, "
        f"{'no early stop' if patience is None else f'patience {patience}'}, "
        f"balance {balance or 'off'}, cache {cache}, modalities {','.join(modalities)}, "
        f"{spec.num_workers} workers x {spec.cpus_per_worker:g} "
        f"{'GPU' if spec.use_gpu else 'CPU'}; rows {rows}" + "".join(f"; {e}" for e in extra)
    )


def _cache(datasets: dict, cache: bool | None, modalities, n_train: int) -> dict:
    """Materialise the splits' modalities once (kept for every epoch) when ``cache`` is
    True, or when None and their estimated size fits ``CACHE_SHARE`` of the object
    store; else they stream and are recomputed each epoch. Says which, and why."""
    import ray

    names = ",".join(modalities)
    if cache is False:
        print(f"caching: off: {names} recomputed every epoch", flush=True)
        return datasets
    val = datasets["val"].materialize()
    n_val, val_bytes = val.count(), val.size_bytes()
    estimate = val_bytes / n_val * n_train if n_val else 0.0
    budget = CACHE_SHARE * ray.cluster_resources().get("object_store_memory", 0.0)
    if cache is None and estimate > budget:
        print(
            f"caching: val only; train {n_train} rows ~{estimate / 2**20:,.0f} MiB of {names} "
            f"> {CACHE_SHARE:.0%} of the object store ({budget / 2**20:,.0f} MiB): "
            "recomputed every epoch (--cache-features to force)",
            flush=True,
        )
        return {**datasets, "val": val}
    why = "--cache-features" if cache else f"auto: <= {budget / 2**20:,.0f} MiB"
    print(
        f"caching: {names} of train {n_train} + val {n_val} rows "
        f"(~{(estimate + val_bytes) / 2**20:,.1f} MiB, {why}) computed once, kept for "
        "every epoch",
        flush=True,
    )
    return {"train": datasets["train"].materialize(), "val": val}


def _plain(metrics: dict) -> dict:
    """JSON-safe copy of reported metrics."""
    return json.loads(json.dumps(metrics, default=lambda o: np.asarray(o).tolist()))
