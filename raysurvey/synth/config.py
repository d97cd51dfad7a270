"""Configuration of a synthetic release, and the class mixes it can draw."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from raysurvey.synth.source import KINDS, STAR_KINDS

SURVEYS = ("lamost", "sdss", "mixed")
MIXES = ("balanced", "survey")
LAMOST_LAYOUT_CHOICES = ("image", "table", "mixed")
SDSS_HDU_CHOICES = ("SPECOBJ", "SPALL", "mixed")
TEMPLATES_ENV = "RAYSURVEY_TEMPLATES"

#: Survey-like fractions (LAMOST LRS: ~94 % stars, mostly F/G/K; ~3.5 % galaxies;
#: ~1.5 % QSOs; O, carbon stars and white dwarfs rare). Renormalised over the kinds asked.
SURVEY_FRACTIONS: dict[str, float] = {
    "O": 0.0005,
    "B": 0.01,
    "A": 0.06,
    "F": 0.27,
    "G": 0.33,
    "K": 0.19,
    "M": 0.08,
    "Carbon": 0.002,
    "WD": 0.003,
    "GALAXY": 0.035,
    "QSO": 0.015,
}

#: Group names accepted by ``--classes`` beside the kinds themselves.
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "all": KINDS,
    "stars": STAR_KINDS,
    "stellar8": ("O", "B", "A", "F", "G", "K", "M", "Carbon"),
    "class3": KINDS,
    "extragalactic": ("GALAXY", "QSO"),
}


def parse_classes(values: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Kinds from ``--classes`` values (kinds or group names, comma or space separated)."""
    if not values:
        return KINDS
    chosen: list[str] = []
    lookup = {k.lower(): k for k in KINDS}
    for value in values:
        for item in str(value).replace(",", " ").split():
            if item.lower() in CLASS_GROUPS:
                chosen.extend(CLASS_GROUPS[item.lower()])
            elif item.lower() in lookup:
                chosen.append(lookup[item.lower()])
            else:
                raise ValueError(
                    f"unknown class {item!r}: use {', '.join(KINDS)} or {', '.join(CLASS_GROUPS)}"
                )
    return tuple(dict.fromkeys(chosen))  # keep order, drop repeats


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic release; same config, same bytes.

    Attributes
    ----------
    n : int
        Number of spectra.
    out : str
        Output directory URI (local path, file:// or s3://).
    templates : str or None
        Redrock template directory; None uses the built-in physical model.
    survey : {"lamost", "sdss", "mixed"}
    classes : tuple of str
        Kinds to draw (see ``raysurvey.synth.source.KINDS``).
    mix : {"balanced", "survey"}
        Equal counts per kind (exact per block of len(classes)), or survey-like fractions.
    seed : int
    gzip : bool
        Write ``.fits.gz`` (LAMOST ships most files that way).
    lamost_layout, sdss_hdu : str
        Which layouts to write ("mixed" draws per file).
    label_noise : float
        Probability that a pipeline label is wrong (truth columns stay right).
    snr_median, snr_sigma, snr_min, snr_max : float
        Log-normal distribution of the target r-band median S/N per pixel, truncated.
    with_2d : bool
        Also write each spectrum's blue- and red-arm 2D stripes (``synth/stripes.py``).
    with_photometry : bool
        Also write each spectrum's g, r, i cutouts (``synth/photometry.py``).
    fibre_contamination : float
        Probability that a neighbouring fibre's light reaches a stripe's edge rows.
    realism : {"survey", "survey-full", "clean"}
        "survey" (default) draws populations and instrument effects as real files show
        them and writes the real files' layout variants (``synth/variety.py``,
        ``observe.py``, docs/real-data.md); "survey-full" adds dust, LAMOST arm steps
        and lost regions and nearby galaxies (not yet shown to help); "clean" is the
        earlier, tidier model.
    """

    n: int
    out: str
    templates: str | None = None
    survey: str = "mixed"
    classes: tuple[str, ...] = KINDS
    mix: str = "survey"
    seed: int = 0
    gzip: bool = False
    lamost_layout: str = "mixed"
    sdss_hdu: str = "mixed"
    label_noise: float = 0.02
    snr_median: float = 20.0
    snr_sigma: float = 0.8
    snr_min: float = 2.0
    snr_max: float = 300.0
    with_2d: bool = False
    with_photometry: bool = False
    fibre_contamination: float = 0.1
    realism: str = "survey"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")
        if self.survey not in SURVEYS:
            raise ValueError(f"survey must be one of {SURVEYS}, not {self.survey!r}")
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {MIXES}, not {self.mix!r}")
        if self.lamost_layout not in LAMOST_LAYOUT_CHOICES:
            raise ValueError(f"lamost_layout must be one of {LAMOST_LAYOUT_CHOICES}")
        if self.sdss_hdu not in SDSS_HDU_CHOICES:
            raise ValueError(f"sdss_hdu must be one of {SDSS_HDU_CHOICES}")
        unknown = set(self.classes) - set(KINDS)
        if unknown or not self.classes:
            raise ValueError(f"classes must be a non-empty subset of {KINDS}, got {self.classes}")
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValueError("label_noise must be in [0, 1]")
        if not 0 < self.snr_min < self.snr_max:
            raise ValueError("need 0 < snr_min < snr_max")
        if self.realism not in ("survey", "survey-full", "clean"):
            raise ValueError(
                f"realism must be 'survey', 'survey-full' or 'clean', not {self.realism!r}"
            )
        if not 0.0 <= self.fibre_contamination <= 1.0:
            raise ValueError("fibre_contamination must be in [0, 1]")


def resolve_templates(templates: str | None) -> str | None:
    """``--templates`` if given, else the RAYSURVEY_TEMPLATES environment variable."""
    return templates or os.environ.get(TEMPLATES_ENV) or None
