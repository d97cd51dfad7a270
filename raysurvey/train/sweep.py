"""Ray Tune sweeps: one trial = one ``fit`` of a model choice at one seed (or one
sampled learning rate / weight decay), aggregated into the papers' mean +- std tables.

Layout under ``STORAGE/NAME`` (local or s3://):

- ``_sweep.json``: the sweep's definition; a rerun must match it (``--resume``);
- ``manifest.parquet``: the rows every trial uses (``--per-class`` of each label,
  after the S/N cut), ``features/``: their modalities, computed once (feature_store);
- ``tune/``: Tune's experiment (restored by ``--resume``), ``train/TRIAL``: each
  trial's Ray Train checkpoints, ``bundles/TRIAL``: its best model;
- ``results/TRIAL.json``: a finished trial's metrics (validation and held-out test);
  a resumed sweep reports these again instead of training again;
- ``table.csv``, ``table.md``, ``chart.png``: mean +- std per choice; ``best_bundle/``.

A seed changes both the split and the initialisation (the papers' repeated runs).
Grid sweeps (choices x seeds) run every trial to the end; a search over a continuous
learning rate / weight decay uses Optuna and ASHA early stopping.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurvey.labels import LABEL_SETS, label_of
from raysurvey.train.data import read_manifest_table
from raysurvey.train.sweep_tables import RESULT_FIELDS, write_tables

#: What a trial's own process (the Ray Train controller) asks for; its workers ask for
#: ``cpus_per_worker`` each (0.9 by default: a trial = one CPU).
TRIAL_CPUS = 0.1


class SweepError(ValueError):
    """A sweep that cannot start: an existing one with another definition, bad choices."""


@dataclass(frozen=True)
class Choice:
    """One row of a results table: a model, its config and modality options."""

    name: str
    model: str
    model_config: dict = field(default_factory=dict)
    modality_options: dict = field(default_factory=dict)
    paper: str | None = None  # the paper's figure for this choice, shown beside ours


@dataclass(frozen=True)
class SweepSpec:
    name: str
    storage: str
    manifest: str
    choices: tuple[Choice, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    labels: str = "stellar8"
    per_class: int | None = None
    min_snr: float | None = None
    epochs: int = 5
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.0
    optimizer: str = "adam"
    preset: str = "audio_fusion"
    search: dict | None = None  # {"lr": [lo, hi], "weight_decay": [lo, hi]}: Optuna + ASHA
    num_samples: int = 1  # trials drawn by the search
    num_workers: int = 1
    cpus_per_worker: float = 0.9
    use_gpu: bool = False
    paper_source: str = ""

    @property
    def root(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    def choice(self, name: str) -> Choice:
        for c in self.choices:
            if c.name == name:
                return c
        raise SweepError(f"unknown choice {name!r}")

    def definition(self) -> dict:
        """What a resumed sweep must share with the first run (the resources may differ:
        a sweep can resume on another cluster)."""
        d = asdict(self)
        for key in ("storage", "num_workers", "cpus_per_worker", "use_gpu"):
            d.pop(key)
        return json.loads(json.dumps(d))


def trial_name(config: dict) -> str:
    """Deterministic from the trial's config, so a restarted sweep finds its trials."""
    name = f"{config['choice']}-s{config['seed']}"
    extra = {k: config[k] for k in ("lr", "weight_decay") if k in config}
    if extra:
        tag = hashlib.blake2b(json.dumps(extra, sort_keys=True).encode(), digest_size=3)
        name += "-" + "-".join(f"{k[:2]}{v:.1e}" for k, v in extra.items()) + "-" + tag.hexdigest()
    return name


# -- the rows a sweep trains on -------------------------------------------------------------


def _stable_key(uri: str) -> str:
    return hashlib.blake2b(uri.encode(), digest_size=8).hexdigest()


def select_rows(
    table: pa.Table, labels: str, per_class: int | None, min_snr: float | None
) -> pa.Table:
    """Rows with a label in the set, above the S/N cut, at most ``per_class`` of each
    label (chosen by a hash of the URI: the same rows for every seed and rerun), in
    manifest order."""
    names = [
        label_of(labels, c, s)
        for c, s in zip(
            table.column("class").to_pylist(), table.column("subclass").to_pylist(), strict=True
        )
    ]
    keep = np.array([n is not None for n in names])
    if min_snr is not None:
        snr = table.column("snr_i").to_numpy(zero_copy_only=False).astype(float)
        keep &= np.nan_to_num(snr, nan=-np.inf) > min_snr
    rows = np.flatnonzero(keep)
    if per_class is not None:
        uris = table.column("uri").to_pylist()
        chosen = []
        for label in LABEL_SETS[labels]:
            mine = [i for i in rows if names[i] == label]
            chosen += sorted(mine, key=lambda i: _stable_key(uris[i]))[:per_class]
        rows = np.sort(np.asarray(chosen, dtype=np.int64))
    return table.take(pa.array(rows, pa.int64()))


def _union_options(choices: Sequence[Choice]) -> tuple[list[str], dict]:
    """Every modality the choices read, with the one set of options each needs."""
    import torch

    from raysurvey.train.run import RunSpec, _model_io

    options: dict[str, dict] = {}
    for choice in choices:
        spec = RunSpec(
            manifest="",
            model=choice.model,
            storage="",
            name="",
            model_config=choice.model_config,
            modality_options=choice.modality_options,
        )
        with torch.device("meta"):
            _, _, needed = _model_io(spec, 2)
        for name, opts in needed.items():
            if name in options and options[name] != opts:
                raise SweepError(
                    f"choices need {name} with different options: {options[name]} and {opts}"
                )
            options[name] = dict(opts)
    return list(options), options


# -- storage helpers --------------------------------------------------------------------------


def _read_json(uri: str) -> dict | None:
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return None
    with fs.open(path) as f:
        return json.load(f)


def _write_json(uri: str, value: dict) -> None:
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        json.dump(value, f, indent=2)


def _remove(uri: str) -> None:
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _remove_recorded_checkpoints(sweep: SweepSpec) -> None:
    """Drop the training checkpoints of every recorded trial: a trial cleans its own up,
    but one killed between recording its result and that clean-up is not run again."""
    fs, path = fsspec.core.url_to_fs(f"{sweep.root}/results")
    recorded = fs.glob(f"{path}/*.json") if fs.exists(path) else []
    for result in recorded:
        trial = result.rsplit("/", 1)[-1].removesuffix(".json")
        _remove(f"{sweep.root}/train/{trial}")


# -- the trial ------------------------------------------------------------------------------


def run_trial(config: dict, sweep: SweepSpec) -> None:
    """Tune trainable: fit one choice at one seed with Ray Train, score it on the test
    split, record ``results/TRIAL.json``. A recorded trial is reported, not retrained."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysurvey.train.evaluate import evaluate_stored
    from raysurvey.train.run import RunSpec, fit

    name = trial_name(config)
    result_uri = f"{sweep.root}/results/{name}.json"
    recorded = _read_json(result_uri)
    if recorded is not None:
        ray.tune.report(_reported(recorded))
        return
    start = time.perf_counter()
    choice = sweep.choice(config["choice"])
    lr = float(config.get("lr", sweep.lr))
    weight_decay = float(config.get("weight_decay", sweep.weight_decay))
    bundle = f"{sweep.root}/bundles/{name}"
    summary = fit(
        RunSpec(
            manifest=f"{sweep.root}/manifest.parquet",
            model=choice.model,
            storage=f"{sweep.root}/train",
            name=name,
            labels=sweep.labels,
            model_config=choice.model_config,
            modality_options=choice.modality_options,
            preset=sweep.preset,
            epochs=sweep.epochs,
            batch_size=sweep.batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=sweep.optimizer,
            balance_to=0,
            split_seed=int(config["seed"]),
            num_workers=sweep.num_workers,
            cpus_per_worker=sweep.cpus_per_worker,
            use_gpu=sweep.use_gpu,
            features=f"{sweep.root}/features",
            checkpoints_to_keep=1,
            callbacks=(TuneReportCallback(),),
            bundle_out=bundle,
        )
    )
    test = evaluate_stored(bundle, f"{sweep.root}/features", f"{sweep.root}/manifest.parquet")
    best = summary["best"]
    record = {
        "trial": name,
        "choice": choice.name,
        "seed": int(config["seed"]),
        "lr": lr,
        "weight_decay": weight_decay,
        "best_epoch": best.get("epoch"),
        "epochs_run": summary["last"].get("epoch"),
        "val_accuracy": best.get("val_accuracy"),
        "val_macro_f1": best.get("val_macro_f1"),
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "n_test": test["n"],
        "wall_s": round(time.perf_counter() - start, 1),
        "bundle": bundle,
    }
    _write_json(result_uri, record)
    _remove(f"{sweep.root}/train/{name}")  # checkpoints: the bundle and result are kept
    ray.tune.report(_reported(record))


def _reported(record: dict) -> dict:
    """The numeric fields Tune keeps (val_score: the metric the search optimises)."""
    out = {k: record[k] for k in RESULT_FIELDS if isinstance(record.get(k), int | float)}
    out["val_score"] = record["val_accuracy"]
    out["finished"] = 1
    return out


# -- the driver -----------------------------------------------------------------------------


def _prepare(sweep: SweepSpec, resume: bool) -> dict:
    """Check or record the definition, write the rows, build the feature store."""
    from raysurvey.train.feature_store import build_feature_store

    stored = _read_json(f"{sweep.root}/_sweep.json")
    if stored is not None and not resume:
        raise SweepError(
            f"{sweep.root} holds a sweep already: pass --resume to continue it, "
            "or choose another --name / --storage"
        )
    if stored is not None and stored != sweep.definition():
        differ = sorted(k for k in stored.keys() | sweep.definition().keys()
                        if stored.get(k) != sweep.definition().get(k))  # fmt: skip
        raise SweepError(f"{sweep.root} was started with other settings ({', '.join(differ)})")
    if stored is None:
        _write_json(f"{sweep.root}/_sweep.json", sweep.definition())
    rows_uri = f"{sweep.root}/manifest.parquet"
    fs, path = fsspec.core.url_to_fs(rows_uri)
    if fs.exists(path):
        rows = pq.read_table(path, filesystem=fs)
    else:
        rows = select_rows(
            read_manifest_table(sweep.manifest), sweep.labels, sweep.per_class, sweep.min_snr
        )
        if rows.num_rows == 0:
            raise SweepError(f"{sweep.manifest}: no {sweep.labels} rows pass the selection")
        pq.write_table(rows, path, filesystem=fs)
    modalities, options = _union_options(sweep.choices)
    print(f"sweep {sweep.name}: {rows.num_rows} spectra, features {', '.join(modalities)}")
    start = time.perf_counter()
    build_feature_store(rows, modalities, options, f"{sweep.root}/features")
    print(f"sweep {sweep.name}: features ready in {time.perf_counter() - start:.0f} s")
    labels = [label_of(sweep.labels, c, s) for c, s in
              zip(rows.column("class").to_pylist(), rows.column("subclass").to_pylist(),
                  strict=True)]  # fmt: skip
    counts = {k: labels.count(k) for k in LABEL_SETS[sweep.labels]}
    return {"rows": rows.num_rows, "counts": counts}


def max_concurrent(sweep: SweepSpec, resources: dict) -> int:
    """Trials that fit the cluster at once (workers' CPUs or GPUs), at least one."""
    if sweep.use_gpu:
        return max(1, int(resources.get("GPU", 0) // sweep.num_workers))
    per_trial = sweep.num_workers * sweep.cpus_per_worker + TRIAL_CPUS
    return max(1, int(resources.get("CPU", 1) // per_trial + 1e-9))


def _param_space(sweep: SweepSpec) -> dict:
    from ray import tune

    names = [c.name for c in sweep.choices]
    if not sweep.search:
        return {"choice": tune.grid_search(names), "seed": tune.grid_search(list(sweep.seeds))}
    space = {"choice": tune.choice(names), "seed": sweep.seeds[0]}
    for key, (low, high) in sweep.search.items():
        space[key] = tune.loguniform(float(low), float(high))
    return space


def run_sweep(sweep: SweepSpec, resume: bool = False, concurrent: int | None = None) -> dict:
    """Run (or resume) the sweep on the connected Ray cluster; write its tables."""
    import ray
    from ray import tune

    from raysurvey.train.run import absolute_uri

    sweep = replace(sweep, storage=absolute_uri(sweep.storage))  # Tune wants absolute paths
    prepared = _prepare(sweep, resume)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep=sweep), {"CPU": TRIAL_CPUS}
    )
    concurrent = concurrent or max_concurrent(sweep, ray.cluster_resources())
    search_alg = scheduler = None
    if sweep.search:
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=sweep.seeds[0])
        scheduler = ASHAScheduler(
            time_attr="training_iteration", max_t=sweep.epochs + 1, grace_period=1,
            reduction_factor=2,
        )  # fmt: skip
    tune_dir = f"{sweep.root}/tune"
    if resume and tune.Tuner.can_restore(tune_dir):
        print(f"sweep {sweep.name}: resuming {tune_dir}")
        tuner = tune.Tuner.restore(tune_dir, trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=_param_space(sweep),
            tune_config=tune.TuneConfig(
                metric="val_score",
                mode="max",
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=sweep.num_samples if sweep.search else 1,
                max_concurrent_trials=concurrent,
                trial_name_creator=lambda t: trial_name(t.config),
                trial_dirname_creator=lambda t: trial_name(t.config),
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=sweep.root,
                verbose=1,
                failure_config=tune.FailureConfig(max_failures=1),
            ),  # fmt: skip
        )
    start = time.perf_counter()
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error is not None]
    _remove_recorded_checkpoints(sweep)
    summary = write_tables(sweep)
    summary |= prepared | {
        "wall_s": round(time.perf_counter() - start, 1),
        "trials_failed": len(errors),
        "concurrent": concurrent,
    }
    _write_json(f"{sweep.root}/summary.json", summary)
    return summary
