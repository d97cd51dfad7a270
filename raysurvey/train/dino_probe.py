"""Linear probe: how much a frozen ViT backbone's CLS features know about the labels.

The standard test of self-supervised features (the DINO paper's linear evaluation):
the backbone is frozen, its CLS embedding computed once for the training and test
splits of a labelled release (the same hash split as ``jobs/train.py``), and only a
linear softmax classifier is trained on it. Runs in one process, without Ray: the
splits of a synthetic release of a few thousand spectra take a minute on a CPU.

    python -m raysurvey.train.dino_probe --manifest REL/manifest.parquet \\
        --backbone DINO_DIR --labels class3  # or no --backbone: random init, with
        # --option variant=normalised to draw images as a DINO backbone's were
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from torch import nn

from raysurvey.data.decode import STATUS_OK, decode_uris
from raysurvey.data.features import parse_options
from raysurvey.modalities.registry import compute
from raysurvey.models import create_model
from raysurvey.models.inputs import to_model_tensor
from raysurvey.train.data import DataSpec, training_tables
from raysurvey.train.metrics import classification_metrics
from raysurvey.train.pretraining_encoding import adopt_pretraining_encoding, pretraining_encoding


@torch.no_grad()
def cls_features(
    model, table, modality: str, options: dict | None = None, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """CLS embeddings [n, hidden] of the rows that decode, and their labels."""
    feats, labels = [], []
    uris = table.column("uri").to_pylist()
    survey = np.asarray(table.column("survey").to_pylist(), dtype=object)
    label = table.column("label").to_numpy()
    for i in range(0, len(uris), batch_size):
        decoded = decode_uris(uris[i : i + batch_size])
        ok = decoded["status"] == STATUS_OK
        batch = {"flux": decoded["flux"][ok], "survey": survey[i : i + batch_size][ok]}
        images = compute(modality, batch, **(options or {}))
        feats.append(model(to_model_tensor(modality, images)).numpy())
        labels.append(label[i : i + batch_size][ok])
    return np.concatenate(feats), np.concatenate(labels)


def fit_linear(x: np.ndarray, y: np.ndarray, n_classes: int, epochs: int = 500, seed: int = 0):
    """Softmax regression on standardised features (Adam, full batch, small L2)."""
    torch.manual_seed(seed)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    layer = nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(layer(xt), yt).backward()
        opt.step()
    return lambda z: layer(torch.as_tensor((z - mean) / std, dtype=torch.float32)).argmax(1)


def linear_probe(
    manifest: str,
    backbone: str | None,
    *,
    model: str = "vit_tiny",
    modality: str = "map2d",
    options: dict | None = None,
    labels: str = "class3",
    split_seed: int = 0,
    seed: int = 0,
) -> dict:
    """Test-split accuracy and macro-F1 of a linear classifier on frozen CLS features of
    ``backbone`` (a ``save_pretrained`` directory or hub id; None: random init, ``seed``),
    its images drawn with ``options`` completed by the backbone's pretraining encoding."""
    encoding = pretraining_encoding(backbone) if backbone else None
    options = adopt_pretraining_encoding({modality: dict(options or {})}, encoding)[0][modality]
    data = training_tables(DataSpec(manifest, labels=labels, split_seed=split_seed))
    torch.manual_seed(seed)
    config = {"num_classes": None, "modality": modality}
    net = create_model(model, **config | ({"pretrained": backbone} if backbone else {}))
    net.eval()
    x_train, y_train = cls_features(net, data.splits["train"], modality, options)
    x_test, y_test = cls_features(net, data.splits["test"], modality, options)
    k = len(data.label_names)
    predict = fit_linear(x_train, y_train, k, seed=seed)
    cm = np.zeros((k, k))
    np.add.at(cm, (y_test, predict(x_test).numpy()), 1)
    metrics = classification_metrics(cm, data.label_names)
    return {
        "backbone": backbone or f"random init ({model}, seed {seed})",
        "modality": modality,
        "options": options,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "majority": float(np.bincount(y_test, minlength=k).max() / max(len(y_test), 1)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--backbone", help="save_pretrained directory (omit: random init)")
    p.add_argument("--model", default="vit_tiny")
    p.add_argument("--modality", default="map2d")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="of the modality, e.g. variant=normalised (default: the backbone's)",
    )
    p.add_argument("--labels", default="class3")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = linear_probe(
        args.manifest,
        args.backbone,
        model=args.model,
        modality=args.modality,
        options=parse_options(f"{args.modality}.{o}" for o in args.option).get(args.modality),
        labels=args.labels,
        split_seed=args.split_seed,
        seed=args.seed,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
