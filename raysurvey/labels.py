"""Label vocabularies and the mapping from survey labels to them: one table, tested.

``class3``: STAR, GALAXY, QSO (survey CLASS). ``stellar8``: O, B, A, F, G, K, M,
Carbon, from SUBCLASS of stars. ``fgk``: the F, G and K stars of stellar8 (DRC-Net's
task); every other star is excluded from it. Anything a rule does not map (LAMOST "Unknown", sky
fibres, white dwarfs, CVs, "OB", L/T dwarfs, empty subclasses) is excluded from
training (``None``) but kept in catalogs.
"""

from __future__ import annotations

import re

CLASS3: tuple[str, ...] = ("STAR", "GALAXY", "QSO")
STELLAR8: tuple[str, ...] = ("O", "B", "A", "F", "G", "K", "M", "Carbon")
FGK: tuple[str, ...] = ("F", "G", "K")
LABEL_SETS: dict[str, tuple[str, ...]] = {"class3": CLASS3, "stellar8": STELLAR8, "fgk": FGK}

#: (pattern on SUBCLASS, stellar8 label or None), first match wins. Patterns are
#: anchored at the start and case-sensitive, as the surveys write them.
STELLAR8_RULES: tuple[tuple[str, str | None], ...] = (
    (r"CarbonWD", None),  # carbon-rich white dwarf: a WD, not a carbon star
    (r"Carbon", "Carbon"),  # "Carbon", "Carbon_lines"
    (r"C-", "Carbon"),  # "C-R", "C-N", "C-H", "C-J"
    (r"C\?", "Carbon"),
    (r"CV", None),
    (r"WD", None),  # "WD", "WDhotter", "WDmagnetic"
    (r"sd[OB]", None),  # hot subdwarfs "sdO", "sdB", "sdO/sdB"
    (r"OB", None),  # LAMOST's ambiguous early type
    (r"O", "O"),
    (r"B", "B"),
    (r"A", "A"),
    (r"F", "F"),
    (r"G", "G"),
    (r"K", "K"),
    (r"(?:d|g|sd)?M", "M"),  # "M3", "dM5", "gM", "sdM2", "M6III (148783)"
    (r"L\d|T\d|L$|T$|Ldwarf", None),
)
_COMPILED = tuple((re.compile(pattern), label) for pattern, label in STELLAR8_RULES)


def class3_label(survey_class: str | None) -> str | None:
    """STAR, GALAXY or QSO from a survey CLASS; None for UNKNOWN, sky and blanks."""
    if survey_class is None:
        return None
    text = str(survey_class).strip().upper()
    return text if text in CLASS3 else None


def stellar8_label(survey_class: str | None, subclass: str | None) -> str | None:
    """O, B, A, F, G, K, M or Carbon for a star's SUBCLASS; None when excluded."""
    if class3_label(survey_class) != "STAR" or subclass is None:
        return None
    text = str(subclass).strip()
    if not text:
        return None
    for pattern, label in _COMPILED:
        if pattern.match(text):
            return label
    return None


def label_of(label_set: str, survey_class: str | None, subclass: str | None) -> str | None:
    """The training label under ``label_set`` ("class3", "stellar8" or "fgk")."""
    if label_set == "class3":
        return class3_label(survey_class)
    if label_set == "stellar8":
        return stellar8_label(survey_class, subclass)
    if label_set == "fgk":
        label = stellar8_label(survey_class, subclass)
        return label if label in FGK else None
    raise ValueError(f"label set must be one of {sorted(LABEL_SETS)}, not {label_set!r}")
