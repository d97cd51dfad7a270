"""Batch inference: classify a release into an exactly-once Parquet catalog, query it.

``classify_release`` is the entry point (``jobs/classify_release.py`` wraps it);
``raysurvey.infer.catalog`` holds the schema, ``store`` the chunk/commit layout,
``check`` the final comparison with the release, ``query`` DuckDB over the catalog.
"""

from raysurvey.infer.catalog import CatalogPlanError, catalog_schema, plan_bundles
from raysurvey.infer.check import CatalogCheckError, CheckReport, check_catalog
from raysurvey.infer.classify import ClassifyConfig, ClassifyResult, classify_release
from raysurvey.infer.release import Release, ReleaseError, read_release
from raysurvey.infer.store import CatalogStore, CatalogStoreError

__all__ = [
    "CatalogCheckError",
    "CatalogPlanError",
    "CatalogStore",
    "CatalogStoreError",
    "CheckReport",
    "ClassifyConfig",
    "ClassifyResult",
    "Release",
    "ReleaseError",
    "catalog_schema",
    "check_catalog",
    "classify_release",
    "plan_bundles",
    "read_release",
]
