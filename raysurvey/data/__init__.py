"""Ray Data pipelines: manifest -> decoded grid spectra -> modalities, streaming.

``build_dataset`` is the entry point; ``decode_uris`` and ``ComputeModalities`` are
the pure functions its stages run (testable without Ray).
"""

from raysurvey.data.decode import STATUS_ERROR, STATUS_OK, DecodeOptions, decode_uris
from raysurvey.data.features import ComputeModalities, output_columns
from raysurvey.data.pipeline import PipelineConfig, add_modalities, build_dataset

__all__ = [
    "STATUS_ERROR",
    "STATUS_OK",
    "ComputeModalities",
    "DecodeOptions",
    "PipelineConfig",
    "add_modalities",
    "build_dataset",
    "decode_uris",
    "output_columns",
]
