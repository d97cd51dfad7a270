"""The catalog schema, in one place: columns, types and the key-value metadata.

One row per input spectrum, with the column names of CONVENTIONS.md. The schema
depends only on the bundles (their ``prob_<label>`` columns), so every chunk of a
catalog has the same one. docs/catalog.md describes each column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

import raysurvey
from raysurvey import warning_bits
from raysurvey.spectra.grid import DLOGLAM, LOGLAM0

CATALOG_FORMAT = "raysurvey-catalog"
#: 2: calibrated probabilities, ``ood_score``, ``warning``, ``z_pred_err``.
#: 3: ``template_class`` (the redshift step's best-fitting class).
CATALOG_VERSION = 3
#: Key of the JSON document in the Parquet key-value metadata.
METADATA_KEY = b"raysurvey.catalog"
#: HEALPix order of the spatial index column (HATS / LSDB convention).
HEALPIX_ORDER = 29
#: Regression targets a bundle may predict, and their catalog columns.
REGRESSION_COLUMNS = {"z": "z_pred", "teff": "teff_pred", "logg": "logg_pred", "feh": "feh_pred"}
#: Manifest columns passed through to the catalog unchanged.
PASSTHROUGH = ("survey", "obsid", "specobjid", "uri", "ra", "dec")
LABEL_COLUMNS = ("class", "subclass", "z", "zwarning", "snr_r")

_HEAD = [
    pa.field("survey", pa.string()),
    pa.field("obsid", pa.int64()),
    pa.field("specobjid", pa.string()),
    pa.field("uri", pa.string(), nullable=False),
    pa.field("ra", pa.float64()),
    pa.field("dec", pa.float64()),
    pa.field("_healpix_29", pa.int64()),
    pa.field("class", pa.string()),
    pa.field("subclass", pa.string()),
    pa.field("z", pa.float64()),
    pa.field("zwarning", pa.int64()),
    pa.field("snr_r", pa.float64()),
    pa.field("good_fraction", pa.float32()),
    pa.field("pred_class", pa.string()),
    pa.field("pred_subclass", pa.string()),
]
_TAIL = [
    pa.field("confidence", pa.float32()),
    pa.field("ood_score", pa.float32()),
    pa.field("warning", pa.int64()),
    *(pa.field(column, pa.float32()) for column in REGRESSION_COLUMNS.values()),
    pa.field("z_pred_err", pa.float32()),
    pa.field("template_class", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("run_id", pa.string()),
    pa.field("created_at", pa.timestamp("us", tz="UTC")),
]


class CatalogPlanError(ValueError):
    """Bundles that cannot be chained into one catalog (the message says why)."""


def prob_column(label: str) -> str:
    """``prob_<label>`` with the label lower-cased: STAR -> prob_star, Carbon -> prob_carbon."""
    return "prob_" + label.lower()


@dataclass(frozen=True)
class BundleRole:
    """What one bundle fills: ``class`` (pred_class), ``subclass`` or ``regression``."""

    uri: str
    role: str
    model_name: str
    version: str
    task: str
    labels: tuple[str, ...]
    modalities: Mapping[str, Mapping]
    #: The bundle's calibration summary (scaling, OOD method, thresholds); None if none.
    calibration: Mapping | None = None


def plan_bundles(manifests: Sequence[tuple[str, Mapping]]) -> list[BundleRole]:
    """Give each bundle (URI, its bundle.json) its role in the catalog.

    The first classifier fills ``pred_class``; a second one fills ``pred_subclass``
    for the rows the first predicts as STAR, so it must come after a classifier
    with a STAR label (class3 then stellar8). Regression bundles fill ``z_pred`` or
    ``teff_pred`` / ``logg_pred`` / ``feh_pred``. Modalities two bundles share must
    be computed with the same options.
    """
    roles: list[BundleRole] = []
    seen_columns: dict[str, str] = {}
    modality_options: dict[str, tuple[str, Mapping]] = {}
    for uri, manifest in manifests:
        labels = tuple(manifest["labels"])
        if manifest["task"] == "classify":
            classifiers = [r for r in roles if r.role != "regression"]
            if not classifiers:
                role = "class"
            elif len(classifiers) == 1:
                if "STAR" not in classifiers[0].labels:
                    raise CatalogPlanError(
                        f"{uri}: a second classifier fills pred_subclass for predicted stars, "
                        f"but the first ({classifiers[0].uri}) has no STAR label"
                    )
                role = "subclass"
            else:
                raise CatalogPlanError(f"{uri}: at most two classifiers (class, then subclass)")
            columns = [prob_column(label) for label in labels]
        else:
            unknown = [t for t in labels if t not in REGRESSION_COLUMNS]
            if unknown:
                raise CatalogPlanError(f"{uri}: no catalog column for targets {unknown}")
            role, columns = "regression", [REGRESSION_COLUMNS[t] for t in labels]
        for column in columns:
            if column in seen_columns:
                raise CatalogPlanError(
                    f"{uri}: {column} is already filled by {seen_columns[column]}"
                )
            seen_columns[column] = uri
        for name, options in manifest["modalities"].items():
            if name in modality_options and dict(modality_options[name][1]) != dict(options):
                raise CatalogPlanError(
                    f"{uri} computes {name} with {dict(options)} but "
                    f"{modality_options[name][0]} with {dict(modality_options[name][1])}"
                )
            modality_options[name] = (uri, options)
        roles.append(
            BundleRole(
                uri=uri,
                role=role,
                model_name=manifest["model_name"],
                version=manifest["version"],
                task=manifest["task"],
                labels=labels,
                modalities=dict(manifest["modalities"]),
                calibration=_calibration_summary(manifest.get("calibration")),
            )
        )
    if not roles:
        raise CatalogPlanError("no bundle given")
    return roles


def _calibration_summary(calibration: Mapping | None) -> dict | None:
    """What a catalog records of a bundle's calibration (no arrays, no fit details)."""
    if not calibration:
        return None
    return {
        "probabilities": dict(calibration.get("probabilities") or {}),
        "ood_method": (calibration.get("ood") or {}).get("method"),
        "thresholds": dict(calibration.get("thresholds") or {}),
        "false_flag_rate": dict(calibration.get("false_flag_rate") or {}),
    }


def modalities_of(roles: Sequence[BundleRole]) -> dict[str, dict]:
    """The modalities (with options) that the chained bundles read, computed once."""
    out: dict[str, dict] = {}
    for role in roles:
        for name, options in role.modalities.items():
            out[name] = dict(options)
    return out


def catalog_schema(roles: Sequence[BundleRole], metadata: Mapping | None = None) -> pa.Schema:
    """The Arrow schema of a catalog made by ``roles`` (JSON ``metadata`` attached)."""
    probs = [
        pa.field(prob_column(label), pa.float32())
        for role in roles
        if role.task == "classify"
        for label in role.labels
    ]
    schema = pa.schema([*_HEAD, *probs, *_TAIL])
    if metadata is not None:
        schema = schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    return schema


def catalog_metadata(roles: Sequence[BundleRole], release: str, catalog_id: str) -> dict:
    """What the catalog was made from: bundles, the wavelength grid, code version."""
    from raysurvey.spectra.grid import N_PIX

    return {
        "format": CATALOG_FORMAT,
        "format_version": CATALOG_VERSION,
        "catalog_id": catalog_id,
        "release": release,
        "raysurvey_version": raysurvey.__version__,
        "bundles": [
            {
                "uri": r.uri,
                "role": r.role,
                "model_name": r.model_name,
                "version": r.version,
                "task": r.task,
                "labels": list(r.labels),
                "modalities": {k: dict(v) for k, v in r.modalities.items()},
                "calibration": r.calibration,
            }
            for r in roles
        ],
        "warning": {
            "bits": dict(warning_bits.BITS),
            "low_snr_below": warning_bits.LOW_SNR_BELOW,
            "few_good_pixels_below": warning_bits.FEW_GOOD_PIXELS_BELOW,
        },
        "grid": {"loglam0": LOGLAM0, "dloglam": DLOGLAM, "n_pix": N_PIX, "unit": "Angstrom"},
        "healpix": {"column": "_healpix_29", "order": HEALPIX_ORDER, "scheme": "nested"},
    }


def read_catalog_metadata(schema: pa.Schema) -> dict:
    """The JSON metadata of a catalog file's schema ({} when absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def healpix29(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """NESTED HEALPix index at order 29 (int64); -1 where ra or dec is missing."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    out = np.full(ra.shape, -1, dtype=np.int64)
    good = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if good.any():
        grid = HEALPix(nside=2**HEALPIX_ORDER, order="nested")
        out[good] = grid.lonlat_to_healpix(ra[good] * u.deg, dec[good] * u.deg)
    return out
