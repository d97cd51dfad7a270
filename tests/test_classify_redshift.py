"""classify_release with the template redshift step: z_pred, z_pred_err, Z_UNRELIABLE."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

from raysurvey.data.decode import DecodeOptions, decode_uris
from raysurvey.infer import CatalogPlanError, CatalogStoreError, ClassifyConfig, classify_release
from raysurvey.infer.catalog import plan_bundles
from raysurvey.infer.redshift_stage import local_templates, plan_redshift
from raysurvey.labels import CLASS3, class3_label
from raysurvey.models import create_model
from raysurvey.models.bundle import read_manifest, save_bundle
from raysurvey.redshift import RedshiftFitter
from raysurvey.synth import SynthConfig, write_release
from raysurvey.warning_bits import TEMPLATE_DISAGREES, Z_UNRELIABLE

pytestmark = pytest.mark.slow
N = 48


@pytest.fixture(scope="module")
def release(tmp_path_factory, templates_dir) -> str:
    """Galaxies, QSOs and stars of both surveys; the first file then truncated."""
    out = tmp_path_factory.mktemp("z-release")
    manifest = write_release(
        SynthConfig(
            n=N,
            out=str(out),
            templates=templates_dir,
            classes=("GALAXY", "QSO", "G", "K"),
            mix="balanced",
            snr_median=20.0,
            snr_min=8.0,
            seed=4,
        ),
        progress=False,
    )
    first = Path(pq.read_table(manifest).column("uri")[0].as_py())
    first.write_bytes(first.read_bytes()[:3000])
    return manifest


def _bundle(path: Path, task: str) -> str:
    torch.manual_seed(0)
    small = {"channels": (8,) * 8, "hidden_dim": 32, "embed_dim": 16}
    if task == "classify":
        model = create_model("spec_cnn", num_classes=3, **small)
        save_bundle(model, str(path), labels=list(CLASS3), metadata={"label_set": "class3"})
    else:
        model = create_model("spec_cnn", num_classes=1, **small)
        save_bundle(
            model, str(path), labels=[task], task="redshift" if task == "z" else "stellar_params"
        )
    return str(path)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("z-bundles")
    return {name: _bundle(root / name, name) for name in ("classify", "teff", "z")}


def _catalog(path: str) -> dict:
    files = sorted(str(p) for p in Path(path).glob("part-*.parquet"))
    return pads.dataset(files, format="parquet").to_table().to_pydict()


def test_template_redshifts_fill_z_pred(ray_cluster, release, bundles, templates_dir, tmp_path):
    """No class bundle (a teff regressor): every class is fitted, the best one wins."""
    out = str(tmp_path / "cat")
    result = classify_release(
        release, [bundles["teff"]], out, ClassifyConfig(chunk_size=20), templates=templates_dir
    )
    assert result.rows_written == N
    table = _catalog(out)
    truth = pq.read_table(release).to_pydict()
    assert table["status"][0] == "error" and table["z_pred"][0] is None
    assert table["z_pred_err"][0] is None
    ok = [i for i in range(N) if table["status"][i] == "ok"]
    assert len(ok) == N - 1
    kind = [class3_label(truth["true_class"][i]) for i in ok]
    z_true = np.array([truth["z"][i] for i in ok])
    z_pred = np.array([table["z_pred"][i] for i in ok], dtype=float)
    z_err = np.array([table["z_pred_err"][i] for i in ok], dtype=float)
    assert np.isfinite(z_pred).all() and (z_err > 0).all() and (z_err < 0.01).all()
    close = np.abs(z_pred - z_true) / (1 + z_true) < 0.003
    extragalactic = np.isin(kind, ["GALAXY", "QSO"])
    assert close[extragalactic].mean() >= 0.9
    assert np.all(np.abs(z_pred[~extragalactic]) < 1000 / 299792.458)  # stars: v/c
    schema = pq.read_schema(sorted(Path(out).glob("part-*.parquet"))[0])
    assert str(schema.field("z_pred").type) == "float" == str(schema.field("z_pred_err").type)
    assert str(schema.field("warning").type) == "int64"


@pytest.fixture(scope="module")
def decoded_ok(release):
    """The grid flux/ivar of the release's readable rows (all but the first)."""
    uris = pq.read_table(release).column("uri").to_pylist()[1:]
    return decode_uris(uris, DecodeOptions(keep_ivar=True))


@pytest.mark.parametrize("check", [False, True])
def test_z_pred_is_the_fit_with_each_rows_pred_class(
    ray_cluster, release, bundles, templates_dir, decoded_ok, tmp_path, check
):
    """With a class bundle, z_pred is the fit with the row's own pred_class (as a direct
    ``RedshiftFitter`` call on the decoded grid gives). The template check also fits
    every class: template_class is the best one, and TEMPLATE_DISAGREES is set exactly
    where it beats pred_class by delta chi^2 / reduced chi^2 > 25."""
    out = str(tmp_path / "cat")
    classify_release(
        release,
        [bundles["classify"]],
        out,
        ClassifyConfig(chunk_size=50),
        templates=templates_dir,
        template_check=check,
    )
    table = _catalog(out)
    ok = list(range(1, N))
    assert all(table["status"][i] == "ok" for i in ok)
    pred = [table["pred_class"][i] for i in ok]
    fitter = RedshiftFitter(templates_dir)
    own = fitter.fit(decoded_ok["flux"], decoded_ok["ivar"], pred)
    got = np.array([table["z_pred"][i] for i in ok], dtype=float)
    np.testing.assert_allclose(got, own["z"].astype(np.float32), rtol=1e-6, atol=1e-7)
    warning = np.array([table["warning"][i] for i in ok])
    template_class = np.array([table["template_class"][i] for i in ok], dtype=object)
    if not check:
        np.testing.assert_array_equal(warning & Z_UNRELIABLE != 0, own["unreliable"])
        assert (template_class == None).all()  # noqa: E711
        assert not (warning & TEMPLATE_DISAGREES).any()
        return
    every = fitter.fit(decoded_ok["flux"], decoded_ok["ivar"], None)
    np.testing.assert_array_equal(template_class, every["spectype"])
    delta = (own["chi2"] - every["chi2"]) / np.maximum(every["rchi2"], 1.0)
    expected = (every["spectype"] != np.array(pred, dtype=object)) & (delta > 25)
    np.testing.assert_array_equal(warning & TEMPLATE_DISAGREES != 0, expected)
    assert (every["spectype"] != np.array(pred, dtype=object)).any()  # the untrained net errs


def test_resume_refuses_other_templates_and_z_bundle_conflicts(
    ray_cluster, release, bundles, templates_dir, tmp_path
):
    out = str(tmp_path / "cat")
    classify_release(release, [bundles["classify"]], out, ClassifyConfig(chunk_size=50))
    with pytest.raises(CatalogStoreError, match="redshift templates differ"):
        classify_release(
            release,
            [bundles["classify"]],
            out,
            ClassifyConfig(chunk_size=50),
            templates=templates_dir,
        )
    with pytest.raises(CatalogPlanError, match="z_pred"):
        classify_release(
            release,
            [bundles["classify"], bundles["z"]],
            str(tmp_path / "other"),
            templates=templates_dir,
        )


def test_templates_from_a_remote_uri(templates_dir, tmp_path):
    """An fsspec URI (s3:// on a cluster; memory:// here) is planned from its listing
    and copied once per process to a local directory the fitter reads."""
    fs = fsspec.filesystem("memory")
    for name in ("rrtemplate-galaxy.fits", "rrtemplate-star-G.fits"):
        fs.pipe(f"/tpl/{name}", (Path(templates_dir) / name).read_bytes())
    roles = plan_bundles([(str(tmp_path), _manifest_of(tmp_path / "b"))])
    plan = plan_redshift("memory://tpl", roles)
    assert plan.files == ("rrtemplate-galaxy.fits", "rrtemplate-star-G.fits")
    local = Path(local_templates("memory://tpl"))
    assert sorted(p.name for p in local.iterdir()) == list(plan.files)
    assert (local / "rrtemplate-galaxy.fits").read_bytes() == (
        Path(templates_dir) / "rrtemplate-galaxy.fits"
    ).read_bytes()
    with pytest.raises(CatalogPlanError, match="no rrtemplate"):
        plan_redshift(str(tmp_path / "empty"), roles)


def _manifest_of(path: Path) -> dict:
    return read_manifest(_bundle(path, "classify"))
