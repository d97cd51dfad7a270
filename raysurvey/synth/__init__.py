"""Synthetic survey releases in the real LAMOST and SDSS file formats.

>>> from raysurvey.synth import SynthConfig, write_release
>>> config = SynthConfig(n=100, out="/tmp/rel", templates="../shared/templates/redrock")
>>> write_release(config)  # doctest: +SKIP
'/tmp/rel/manifest.parquet'
"""

from raysurvey.synth.config import SynthConfig, parse_classes, resolve_templates
from raysurvey.synth.release import generate_chunk, generate_one, make_source, write_release
from raysurvey.synth.source import KINDS, STAR_KINDS, RestFrameSpectrum, SpectrumSource

__all__ = [
    "KINDS",
    "STAR_KINDS",
    "RestFrameSpectrum",
    "SpectrumSource",
    "SynthConfig",
    "generate_chunk",
    "generate_one",
    "make_source",
    "parse_classes",
    "resolve_templates",
    "write_release",
]
