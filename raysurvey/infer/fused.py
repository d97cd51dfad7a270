"""Decode, modalities and prediction of a batch in one actor: the CPU-cluster path.

On GPU clusters ``classify_release`` streams three stages (decode tasks, modality
actors, GPU predictors) so that many CPUs feed each GPU. Without GPUs that split only
costs: every row's grid flux and modality tensors cross the object store twice, and
the stages' fractional CPU requests leave cores idle while one stage waits for the
next (measured on 2 CPUs: ~1.5x one single-threaded loop). Fused, each actor holds
one CPU and runs the whole per-row path on its block, as a plain loop would, and N
actors are N such loops (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pyarrow as pa

from raysurvey.data.decode import DecodeOptions
from raysurvey.data.features import products_for
from raysurvey.data.pipeline import ModalityStage, decode_table
from raysurvey.infer.catalog import BundleRole
from raysurvey.infer.predict import Predictor
from raysurvey.infer.redshift_stage import RedshiftPlan


class FusedPredictor:
    """``decode_table`` -> ``ModalityStage`` -> ``Predictor`` on one Arrow batch.

    Takes manifest rows (with ``_row``), returns catalog rows, exactly as the three
    stages would; ``threads``: torch threads of the actor (its CPUs).
    """

    def __init__(
        self,
        roles: Sequence[BundleRole],
        modalities: Mapping[str, Mapping],
        decode: DecodeOptions,
        threads: int = 1,
        redshift: RedshiftPlan | None = None,
    ):
        names = list(modalities)
        products = tuple(p for p in products_for(names) if p not in decode.products)
        self.decode = replace(decode, products=(*decode.products, *products))
        self.modalities = ModalityStage(
            names, modalities, keep_flux=redshift is not None, torch_threads=threads
        )
        self.predictor = Predictor(roles, use_gpu=False, threads=threads, redshift=redshift)

    def __call__(self, table: pa.Table) -> pa.Table:
        return self.predictor(self.modalities(decode_table(table, self.decode)))
