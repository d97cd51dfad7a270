"""A training split as a streaming Ray Dataset of modalities: shared by training,
evaluation and bundle calibration (which must not import the training driver)."""

from __future__ import annotations

import pyarrow as pa

from raysurvey.data.pipeline import PipelineConfig, add_modalities, manifest_blocks

#: The pipeline on a training cluster: train workers hold CPUs too, so decode tasks
#: and modality actors ask for less than in a pure feature job.
TRAIN_PIPELINE = PipelineConfig(decode_cpus=0.25, actor_cpus=0.5, max_actors=1)


def build_split_dataset(table: pa.Table, modalities, options, label_columns, pipeline):
    """Decode and compute ``modalities`` for a split's manifest rows, keeping the labels."""
    blocks = manifest_blocks(table, pipeline.decode_batch_size)
    ds = add_modalities(blocks, modalities, options, config=pipeline, repartition=False)
    # a projection (fused into the actors, no extra stage holding CPUs); unreadable
    # spectra (status "error") are skipped by the loop
    return ds.select_columns([*modalities, *label_columns, "status"])
