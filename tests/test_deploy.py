"""The deployment files (infra/, docs/deploy.md), checked without a cluster or a network.

- every YAML under infra/ parses, and the KubeRay manifests match a strict model of the
  ray.io/v1 fields we use (unknown keys and wrong types fail, naming the path);
- KubeRay rules: a head with ``num-cpus: "0"``, GPU groups whose ``nvidia.com/gpu``
  limits equal their requests with a matching toleration, pod shapes shared by the
  RayCluster and the RayJobs, S3 credentials only through the ``raysurvey-s3`` Secret,
  no AWS keys anywhere;
- every RayJob entrypoint and every job command of docs/deploy.md runs a script of this
  repository with arguments that the script's own argparse parser accepts;
- infra/runtime_env.yaml and the RayJobs' runtimeEnvYAML agree, and Ray's own upload
  walk with those excludes ships the code and nothing heavy;
- the ``ray up`` config passes Ray's own ``prepare_config`` + ``validate_config``;
- the Dockerfile agrees with pyproject.toml (Ray and Python of the base image, the pins,
  the version) and runs as a non-root user in the WORKDIR the RayJobs use;
- one image name and tag everywhere, and rayVersion equal to the ray pin;
- token authentication on in every cluster config (KubeRay ``authOptions``, the ``ray
  up`` containers' environment and token file), and no token value anywhere;
- every ``jobs/*.py`` run by a python without the project's dependencies says so in one
  line instead of a traceback; the README's commands run real scripts and ``raysurvey``
  subcommands with arguments their parsers accept.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
KUBERAY = INFRA / "kuberay"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
RUNTIME_ENV = INFRA / "runtime_env.yaml"
RAY_UP = INFRA / "aws" / "cluster.yaml"
DEPLOY_MD = ROOT / "docs" / "deploy.md"
README = ROOT / "README.md"
JOBS = sorted((ROOT / "jobs").glob("*.py"))
IMAGE_REPO = "ghcr.io/raysurvey/raysurvey"
S3_SECRET = "raysurvey-s3"
PLACEHOLDER = "REPLACE_ME"
GPU = "nvidia.com/gpu"


# -- pyproject ------------------------------------------------------------------------------


@cache
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(?P<version>[^\s;,]+)$")


@cache
def pins() -> dict[str, str]:
    """``dependencies`` as {normalised name: version}; every one must be an exact pin."""
    result = {}
    for requirement in pyproject()["project"]["dependencies"]:
        match = PIN.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not an exact pin (name==version)"
        result[match["name"].lower().replace("_", "-")] = match["version"]
    return result


def image() -> str:
    return f"{IMAGE_REPO}:{pyproject()['project']['version']}"


# -- a strict model of the KubeRay fields we use --------------------------------------------


@dataclass(frozen=True, eq=False)
class Obj:
    """A mapping whose keys must all be in ``fields`` ({key: spec}); ``required`` too."""

    fields: dict[str, Any]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """A mapping with string keys (labels, rayStartParams, resource lists)."""

    value: Any


@dataclass(frozen=True)
class OneOf:
    values: tuple


@dataclass(frozen=True)
class Quantity:
    """A Kubernetes quantity: an int, or a string such as "15", 56Gi, 500m."""

    pattern: re.Pattern = re.compile(r"^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(value: Any, spec: Any, path: str = "") -> list[str]:
    """Every mismatch between ``value`` and ``spec``, each naming its path."""
    if isinstance(spec, Obj):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        errors = [
            f"{_join(path, key)}: unknown key (known: {', '.join(sorted(spec.fields))})"
            for key in value
            if key not in spec.fields
        ]
        errors += [
            f"{_join(path, key)}: required key missing" for key in spec.required if key not in value
        ]
        for key, item in value.items():
            if key in spec.fields:
                errors += check(item, spec.fields[key], _join(path, key))
        return errors
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in check(item, spec.item, f"{path}[{i}]")]
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        errors = [
            f"{path}: key {key!r} is not a string" for key in value if not isinstance(key, str)
        ]
        for key, item in value.items():
            errors += check(item, spec.value, f"{path}[{key!r}]")
        return errors
    if isinstance(spec, OneOf):
        return [] if value in spec.values else [f"{path}: {value!r} is not one of {spec.values}"]
    if isinstance(spec, Quantity):
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and spec.pattern.match(value)
        )
        return [] if ok else [f"{path}: {value!r} is not a Kubernetes quantity"]
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return []
    names = " or ".join(t.__name__ for t in types)
    return [f"{path}: expected {names}, got {type(value).__name__} {value!r}"]


NUMBER = (int, float)
STR_MAP = MapOf(str)
PULL_POLICY = OneOf(("Always", "IfNotPresent", "Never"))
METADATA = Obj(
    {"name": str, "namespace": str, "labels": STR_MAP, "annotations": STR_MAP}, ("name",)
)
RESOURCES = Obj({"requests": MapOf(Quantity()), "limits": MapOf(Quantity())})
NAME_REF = Obj({"name": str, "optional": bool}, ("name",))
ENV_VAR = Obj(
    {
        "name": str,
        "value": str,
        "valueFrom": Obj(
            {
                "secretKeyRef": Obj({"name": str, "key": str, "optional": bool}, ("name", "key")),
                "fieldRef": Obj({"fieldPath": str}, ("fieldPath",)),
            }
        ),
    },
    ("name",),
)
ENV_FROM = Obj({"secretRef": NAME_REF, "configMapRef": NAME_REF, "prefix": str})
PORT = Obj(
    {"containerPort": int, "name": str, "protocol": OneOf(("TCP", "UDP", "SCTP"))},
    ("containerPort",),
)
VOLUME_MOUNT = Obj(
    {"name": str, "mountPath": str, "readOnly": bool, "subPath": str}, ("name", "mountPath")
)
HANDLER = Obj({"exec": Obj({"command": ListOf(str)}, ("command",))}, ("exec",))
CONTAINER = Obj(
    {
        "name": str,
        "image": str,
        "imagePullPolicy": PULL_POLICY,
        "command": ListOf(str),
        "args": ListOf(str),
        "resources": RESOURCES,
        "ports": ListOf(PORT),
        "env": ListOf(ENV_VAR),
        "envFrom": ListOf(ENV_FROM),
        "volumeMounts": ListOf(VOLUME_MOUNT),
        "lifecycle": Obj({"preStop": HANDLER, "postStart": HANDLER}),
    },
    ("name", "image"),
)
TOLERATION = Obj(
    {
        "key": str,
        "operator": OneOf(("Exists", "Equal")),
        "value": str,
        "effect": OneOf(("NoSchedule", "PreferNoSchedule", "NoExecute")),
        "tolerationSeconds": int,
    }
)
VOLUME = Obj(
    {
        "name": str,
        "emptyDir": Obj({"medium": OneOf(("", "Memory")), "sizeLimit": Quantity()}),
        "secret": Obj({"secretName": str, "optional": bool}, ("secretName",)),
        "configMap": NAME_REF,
    },
    ("name",),
)
POD_TEMPLATE = Obj(
    {
        "metadata": Obj({"labels": STR_MAP, "annotations": STR_MAP}),
        "spec": Obj(
            {
                "containers": ListOf(CONTAINER),
                "tolerations": ListOf(TOLERATION),
                "nodeSelector": STR_MAP,
                "serviceAccountName": str,
                "volumes": ListOf(VOLUME),
            },
            ("containers",),
        ),
    },
    ("spec",),
)
HEAD_GROUP = Obj(
    {
        "rayStartParams": STR_MAP,
        "template": POD_TEMPLATE,
        "serviceType": OneOf(("ClusterIP", "NodePort", "LoadBalancer")),
        "enableIngress": bool,
    },
    ("rayStartParams", "template"),
)
WORKER_GROUP = Obj(
    {
        "groupName": str,
        "replicas": int,
        "minReplicas": int,
        "maxReplicas": int,
        "idleTimeoutSeconds": int,
        "rayStartParams": STR_MAP,
        "template": POD_TEMPLATE,
    },
    ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"),
)
AUTOSCALER_OPTIONS = Obj(
    {
        "upscalingMode": OneOf(("Default", "Aggressive", "Conservative")),
        "idleTimeoutSeconds": int,
        "resources": RESOURCES,
        "image": str,
        "imagePullPolicy": PULL_POLICY,
        "env": ListOf(ENV_VAR),
        "envFrom": ListOf(ENV_FROM),
        "version": OneOf(("v1", "v2")),
    }
)
AUTH_OPTIONS = Obj(
    {"mode": OneOf(("disabled", "token")), "secretName": str, "enableK8sTokenAuth": bool}
)
RAY_CLUSTER_SPEC = Obj(
    {
        "rayVersion": str,
        "authOptions": AUTH_OPTIONS,
        "enableInTreeAutoscaling": bool,
        "autoscalerOptions": AUTOSCALER_OPTIONS,
        "headGroupSpec": HEAD_GROUP,
        "workerGroupSpecs": ListOf(WORKER_GROUP),
    },
    ("rayVersion", "headGroupSpec", "workerGroupSpecs"),
)
RAY_JOB_SPEC = Obj(
    {
        "entrypoint": str,
        "runtimeEnvYAML": str,
        "submissionMode": OneOf(("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")),
        "shutdownAfterJobFinishes": bool,
        "ttlSecondsAfterFinished": int,
        "activeDeadlineSeconds": int,
        "backoffLimit": int,
        "entrypointNumCpus": NUMBER,
        "entrypointNumGpus": NUMBER,
        "rayClusterSpec": RAY_CLUSTER_SPEC,
    },
    ("entrypoint", "runtimeEnvYAML", "shutdownAfterJobFinishes", "rayClusterSpec"),
)
TOP = ("apiVersion", "kind", "metadata", "spec")
MODELS = {
    "RayCluster": Obj(
        {
            "apiVersion": OneOf(("ray.io/v1",)),
            "kind": OneOf(("RayCluster",)),
            "metadata": METADATA,
            "spec": RAY_CLUSTER_SPEC,
        },
        TOP,
    ),
    "RayJob": Obj(
        {
            "apiVersion": OneOf(("ray.io/v1",)),
            "kind": OneOf(("RayJob",)),
            "metadata": METADATA,
            "spec": RAY_JOB_SPEC,
        },
        TOP,
    ),
    "Secret": Obj(
        {
            "apiVersion": OneOf(("v1",)),
            "kind": OneOf(("Secret",)),
            "metadata": METADATA,
            "type": OneOf(("Opaque",)),
            "stringData": STR_MAP,
        },
        ("apiVersion", "kind", "metadata", "stringData"),
    ),
}


# -- reading the manifests ------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))


def load(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.relative_to(ROOT)}: expected one YAML document"
    return docs[0]


def manifests(kind: str) -> list[tuple[str, dict]]:
    found = [(p.name, load(p)) for p in sorted(KUBERAY.glob("*.yaml"))]
    return [(name, doc) for name, doc in found if doc.get("kind") == kind]


def cluster_specs() -> list[tuple[str, dict]]:
    """(file, RayClusterSpec) of the RayCluster and of every RayJob."""
    specs = [(name, doc["spec"]) for name, doc in manifests("RayCluster")]
    return specs + [(name, doc["spec"]["rayClusterSpec"]) for name, doc in manifests("RayJob")]


def groups(spec: dict) -> list[tuple[str, dict]]:
    """(group name, group spec), the head first (named "head")."""
    return [("head", spec["headGroupSpec"])] + [
        (g["groupName"], g) for g in spec["workerGroupSpecs"]
    ]


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay's Ray container is the first


def all_containers(spec: dict) -> list[tuple[str, dict]]:
    return [(name, c) for name, g in groups(spec) for c in g["template"]["spec"]["containers"]]


def runtime_env() -> dict:
    return load(RUNTIME_ENV)


# -- YAML and the model ---------------------------------------------------------------------


def test_there_is_a_raycluster_three_rayjobs_and_the_secret_example() -> None:
    assert [n for n, _ in manifests("RayCluster")] == ["raycluster.yaml"]
    assert [n for n, _ in manifests("RayJob")] == [
        "rayjob-classify.yaml",
        "rayjob-sweep.yaml",
        "rayjob-train.yaml",
    ]
    assert [n for n, _ in manifests("Secret")] == ["s3-secret.example.yaml"]


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_yaml_under_infra_parses(path: Path) -> None:
    assert isinstance(load(path), dict)


@pytest.mark.parametrize("path", sorted(KUBERAY.glob("*.yaml")), ids=lambda p: p.name)
def test_kuberay_manifest_matches_the_model(path: Path) -> None:
    doc = load(path)
    assert doc.get("kind") in MODELS, f"{path.name}: unexpected kind {doc.get('kind')!r}"
    errors = check(doc, MODELS[doc["kind"]])
    assert not errors, f"{path.name}:\n" + "\n".join(errors)


def test_the_model_rejects_a_misspelt_key_and_a_string_for_an_int() -> None:
    doc = copy.deepcopy(load(KUBERAY / "raycluster.yaml"))
    assert check(doc, MODELS["RayCluster"]) == []
    doc["spec"]["workerGroupSpec"] = doc["spec"].pop("workerGroupSpecs")
    errors = check(doc, MODELS["RayCluster"])
    assert errors[0].startswith("spec.workerGroupSpec: unknown key (known: ")
    assert "spec.workerGroupSpecs: required key missing" in errors

    doc = copy.deepcopy(load(KUBERAY / "rayjob-classify.yaml"))
    group = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    group["maxReplicas"] = "50"
    group["replicas"] = True  # YAML `yes`: a bool is not an int either
    group["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "56 GB"
    doc["spec"]["shutdownAfterJobFinishes"] = "true"
    assert sorted(check(doc, MODELS["RayJob"])) == [
        "spec.rayClusterSpec.workerGroupSpecs[0].maxReplicas: expected int, got str '50'",
        "spec.rayClusterSpec.workerGroupSpecs[0].replicas: expected int, got bool True",
        "spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources"
        ".limits['memory']: '56 GB' is not a Kubernetes quantity",
        "spec.shutdownAfterJobFinishes: expected bool, got str 'true'",
    ]


# -- KubeRay rules --------------------------------------------------------------------------


def cluster_problems(spec: dict) -> list[str]:
    """What breaks our KubeRay rules in one RayClusterSpec (empty when it is fine)."""
    problems = []
    if spec["rayVersion"] != pins()["ray"]:
        problems.append(f"rayVersion {spec['rayVersion']} is not the ray pin {pins()['ray']}")
    if spec.get("authOptions", {}).get("mode") != "token":
        problems.append("authOptions.mode must be token (Ray token authentication)")
    head = spec["headGroupSpec"]["rayStartParams"]
    if head.get("num-cpus") != "0":
        problems.append('head: rayStartParams num-cpus must be "0"')
    if head.get("dashboard-host") != "0.0.0.0":
        problems.append("head: rayStartParams dashboard-host must be 0.0.0.0")
    names = [g for g, _ in groups(spec)]
    if len(names) != len(set(names)):
        problems.append(f"duplicate group names {names}")
    for name, group in groups(spec):
        resources = ray_container(group).get("resources", {})
        limits, requests = resources.get("limits", {}), resources.get("requests", {})
        if not {"cpu", "memory"} <= limits.keys():
            problems.append(f"{name}: needs cpu and memory limits (Ray reads them)")
        for key, limit in limits.items():
            if str(requests.get(key)) != str(limit):
                problems.append(f"{name}: requests[{key}] {requests.get(key)} != limits {limit}")
        params = group["rayStartParams"]
        if name != "head" and params.get("num-cpus", str(limits.get("cpu"))) != str(
            limits.get("cpu")
        ):
            problems.append(f"{name}: num-cpus {params['num-cpus']} != cpu limit")
        gpus = limits.get(GPU)
        if gpus:
            if params.get("num-gpus", str(gpus)) != str(gpus):
                problems.append(f"{name}: num-gpus {params['num-gpus']} != {GPU} limit {gpus}")
            if not any(
                t.get("key") == GPU
                and t.get("effect") == "NoSchedule"
                and t.get("operator", "Equal") in ("Exists", "Equal")
                for t in group["template"]["spec"].get("tolerations", [])
            ):
                problems.append(f"{name}: no {GPU} NoSchedule toleration")
        elif params.get("num-gpus", "0") != "0":
            problems.append(f"{name}: num-gpus {params['num-gpus']} without {GPU} limits")
        if name == "gpu" and not gpus:
            problems.append(f"gpu: no {GPU} limits")
        if name in ("head", "cpu") and gpus:
            problems.append(f"{name}: requests GPUs")
        if name != "head":
            low, high = group["minReplicas"], group["maxReplicas"]
            if not 0 <= low <= group.get("replicas", low) <= high:
                problems.append(f"{name}: needs 0 <= minReplicas <= replicas <= maxReplicas")
    problems += [
        f"{name}: image {c['image']} is not {image()}"
        for name, c in all_containers(spec)
        if c["image"] != image()
    ]
    return problems


@pytest.mark.parametrize("name, spec", cluster_specs(), ids=[n for n, _ in cluster_specs()])
def test_kuberay_cluster_rules(name: str, spec: dict) -> None:
    assert cluster_problems(spec) == [], name


def test_the_cluster_rules_catch_broken_groups() -> None:
    spec = copy.deepcopy(load(KUBERAY / "raycluster.yaml")["spec"])
    spec["headGroupSpec"]["rayStartParams"]["num-cpus"] = "4"
    del spec["authOptions"]
    gpu = dict(groups(spec))["gpu"]
    gpu["template"]["spec"]["tolerations"] = []
    gpu["rayStartParams"]["num-gpus"] = "2"
    gpu["template"]["spec"]["containers"][0]["resources"]["requests"][GPU] = 0
    cpu = dict(groups(spec))["cpu"]
    cpu["minReplicas"], cpu["maxReplicas"] = 3, 2
    assert cluster_problems(spec) == [
        "authOptions.mode must be token (Ray token authentication)",
        'head: rayStartParams num-cpus must be "0"',
        "cpu: needs 0 <= minReplicas <= replicas <= maxReplicas",
        "gpu: requests[nvidia.com/gpu] 0 != limits 1",
        "gpu: num-gpus 2 != nvidia.com/gpu limit 1",
        "gpu: no nvidia.com/gpu NoSchedule toleration",
    ]


def test_rayjobs_use_the_pod_shapes_of_the_raycluster() -> None:
    """The capacity plan of docs/deploy.md counts pods of one shape per group."""
    (_, cluster), *_ = manifests("RayCluster")
    reference = {g: ray_container(s)["resources"] for g, s in groups(cluster["spec"])}
    head_params = cluster["spec"]["headGroupSpec"]["rayStartParams"]
    for name, job in manifests("RayJob"):
        spec = job["spec"]["rayClusterSpec"]
        assert spec["headGroupSpec"]["rayStartParams"] == head_params, name
        for group_name, group in groups(spec):
            assert group_name in reference, f"{name}: group {group_name} is not in the RayCluster"
            assert ray_container(group)["resources"] == reference[group_name], (
                f"{name} group {group_name}: resources differ from raycluster.yaml"
            )


def test_s3_credentials_come_only_from_the_secret() -> None:
    for name, spec in cluster_specs():
        for group_name, container in all_containers(spec):
            refs = [
                e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e
            ]
            assert refs == [S3_SECRET], f"{name} {group_name}: envFrom secretRef {refs}"
            for env in container.get("env", []):
                assert not env["name"].startswith("AWS_") or "value" not in env, (
                    f"{name} {group_name}: {env['name']} set literally"
                )
    (_, secret), *_ = manifests("Secret")
    assert secret["metadata"]["name"] == S3_SECRET
    assert set(secret["stringData"]) >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert set(secret["stringData"].values()) == {PLACEHOLDER}, "the example holds real values"


AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")
AWS_SECRET = re.compile(r"(?i)aws_secret_access_key[\"']?\s*[:=]\s*[\"']?([^\s\"'#,]*)")


def aws_key_findings(text: str) -> list[str]:
    found = [f"access key id {m}" for m in AWS_KEY_ID.findall(text)]
    return found + [
        f"secret access key {v!r}"
        for v in AWS_SECRET.findall(text)
        if v not in ("", PLACEHOLDER, "...") and not v.startswith("$")
    ]


def test_the_key_scanner_finds_keys() -> None:
    fake_id = "AKIA" + "Q" * 16  # built here so that no key-shaped literal sits in the repo
    assert aws_key_findings(f"AWS_ACCESS_KEY_ID={fake_id}") == [f"access key id {fake_id}"]
    assert aws_key_findings("aws_secret_access_key: abcDEF123/xyz") == [
        "secret access key 'abcDEF123/xyz'"
    ]
    assert aws_key_findings(f"AWS_SECRET_ACCESS_KEY: {PLACEHOLDER}") == []


def test_no_aws_keys_in_infra_or_the_deploy_guide() -> None:
    files = [p for p in INFRA.rglob("*") if p.is_file()] + [DEPLOY_MD]
    findings = {
        str(p.relative_to(ROOT)): aws_key_findings(p.read_text(errors="replace")) for p in files
    }
    assert not {k: v for k, v in findings.items() if v}


# -- runtime env ----------------------------------------------------------------------------


def test_runtime_env_file_is_valid_for_ray_and_installs_nothing() -> None:
    from ray.runtime_env import RuntimeEnv

    env = runtime_env()
    assert set(env) == {"excludes", "env_vars"}, "no pip/conda/working_dir: the image has them"
    RuntimeEnv(**env)  # Ray's own type checks (str env values, list of str excludes)
    assert {".git/", ".venv/", ".cache/"} <= set(env["excludes"])


def test_working_dir_upload_ships_the_code_and_nothing_heavy() -> None:
    """Ray's own upload walk (``--working-dir .``) with only our excludes (no .gitignore)."""
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    shipped: list[Path] = []
    _dir_travel(
        ROOT,
        [_get_excludes(ROOT, runtime_env()["excludes"])],
        lambda p: shipped.append(p) if p.is_file() else None,
        include_gitignore=False,
    )
    relative = {p.relative_to(ROOT).as_posix() for p in shipped}
    for needed in (
        "jobs/classify_release.py",
        "jobs/train.py",
        "tune/sweep_attention.py",
        "raysurvey/__init__.py",
        "raysurvey/infer/classify.py",
    ):
        assert needed in relative, f"{needed} would not be uploaded"
    heavy = [r for r in relative if r.split("/")[0] in (".git", ".venv", ".cache")]
    assert not heavy, heavy[:5]
    assert not [r for r in relative if "__pycache__" in r or r.endswith(".egg-info")]
    size = sum(p.stat().st_size for p in shipped)
    assert size < 20 * 2**20, f"the working dir upload would be {size / 2**20:.1f} MiB"


@pytest.mark.parametrize("name, job", manifests("RayJob"), ids=[n for n, _ in manifests("RayJob")])
def test_rayjob_shuts_down_and_carries_the_runtime_env(name: str, job: dict) -> None:
    from ray.runtime_env import RuntimeEnv

    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True, f"{name}: the cluster would outlive the job"
    assert spec.get("ttlSecondsAfterFinished", 0) >= 0
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(env, dict), f"{name}: runtimeEnvYAML is not a mapping"
    RuntimeEnv(**env)
    # The code and the pins come from the image: nothing to upload or install, so the
    # RayJobs carry the env_vars of infra/runtime_env.yaml and at most its excludes.
    assert set(env) <= {"env_vars", "excludes"}, f"{name}: runtimeEnvYAML keys {sorted(env)}"
    assert env["env_vars"] == runtime_env()["env_vars"], f"{name}: env_vars differ"
    assert env.get("excludes", runtime_env()["excludes"]) == runtime_env()["excludes"]


# -- entrypoints and commands run real scripts with flags they accept -----------------------


class _Parsed(Exception):
    """Raised with the namespace once a script's parser has parsed: stops main() there."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


@cache
def _script_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_deploy_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_with_script(path: Path, argv: list[str]) -> argparse.Namespace:
    """Run the script's ``main(argv)`` until its own parser has parsed ``argv``, no further."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    stderr = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop):
        try:
            with contextlib.redirect_stderr(stderr):
                _script_module(path).main(argv)
        except _Parsed as parsed:
            return parsed.namespace
        except SystemExit:
            pytest.fail(
                f"{path.relative_to(ROOT)} rejects {shlex.join(argv)}:\n{stderr.getvalue()}"
            )
    pytest.fail(f"{path.relative_to(ROOT)}: main() returned without parsing its arguments")


def workdir() -> str:
    return [v for k, v in dockerfile_instructions() if k == "WORKDIR"][-1]


def script_command(tokens: list[str]) -> tuple[Path, list[str]] | None:
    """(script, argv) of the first ``python SCRIPT ARGS`` in ``tokens``, else None."""
    for i, token in enumerate(tokens[:-1]):
        if token in ("python", "python3") and tokens[i + 1].endswith(".py"):
            script = tokens[i + 1]
            if script.startswith("/"):
                prefix = workdir().rstrip("/") + "/"
                assert script.startswith(prefix), f"{script} is not under the image's {prefix}"
                script = script[len(prefix) :]
            argv = []
            for arg in tokens[i + 2 :]:
                if arg in ("|", "&&", "||", ";", ">", "2>&1"):
                    break
                argv.append(arg)
            return ROOT / script, argv
    return None


@pytest.mark.parametrize("name, job", manifests("RayJob"), ids=[n for n, _ in manifests("RayJob")])
def test_rayjob_entrypoint_runs_a_repo_script_with_accepted_flags(name: str, job: dict) -> None:
    tokens = shlex.split(job["spec"]["entrypoint"])
    command = script_command(tokens)
    assert command and tokens[0] == "python", f"{name}: entrypoint is not `python SCRIPT ...`"
    script, argv = command
    assert script.parent.name in ("jobs", "tune") and script.is_file(), f"{name}: {script}"
    args = parse_with_script(script, argv)
    for value in vars(args).values():  # the job reads and writes S3, never a local path
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "/" in item:
                assert item.startswith("s3://"), f"{name}: {item} is not an s3:// URI"


def deploy_md_commands() -> list[str]:
    """Logical lines (continuations joined) of the bash blocks of docs/deploy.md."""
    text = DEPLOY_MD.read_text()
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S):
        lines += block.replace("\\\n", " ").splitlines()
    return lines


def test_deploy_md_job_commands_parse_with_their_scripts() -> None:
    lines = [line for line in deploy_md_commands() if re.search(r"\bpython3? ", line)]
    commands = [c for c in (script_command(shlex.split(s, comments=True)) for s in lines) if c]
    scripts = {script.relative_to(ROOT).as_posix() for script, _ in commands}
    assert {"jobs/classify_release.py"} <= scripts, scripts
    for script, argv in commands:
        assert script.is_file(), f"docs/deploy.md runs {script}, which does not exist"
        parse_with_script(script, argv)


# -- ray up ---------------------------------------------------------------------------------

AWS_GPUS = {"g5.12xlarge": 4, "p4d.24xlarge": 8}


def prepared_ray_up_config() -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(load(RAY_UP)))  # what `ray up` does first
    validate_config(config)  # jsonschema + Ray's own consistency checks
    return config


def test_ray_up_config_passes_rays_validation() -> None:
    config = prepared_ray_up_config()
    raw = load(RAY_UP)
    assert raw["docker"]["image"] == image()
    assert raw["auth"]["ssh_user"] == "ubuntu" and raw["provider"]["type"] == "aws"
    types = raw["available_node_types"]
    head = types[raw["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must advertise no CPUs"
    for name, node in types.items():
        assert "IamInstanceProfile" in node["node_config"], f"{name}: S3 access via IAM profile"
        instance = node["node_config"]["InstanceType"]
        gpus = AWS_GPUS.get(instance, 0)
        assert node["resources"].get("GPU", 0) == gpus, f"{name}: {instance} has {gpus} GPUs"
        options = node.get("docker", {}).get("worker_run_options", [])
        assert ("--gpus all" in options) == bool(gpus), f"{name}: --gpus all only on GPU nodes"
    assert "--gpus all" not in raw["docker"].get("run_options", [])
    assert {AWS_GPUS.get(t["node_config"]["InstanceType"]) for t in types.values()} >= {4, 8}
    for key in ("setup_commands", "head_setup_commands", "worker_setup_commands"):
        assert config[key] == [], f"{key}: the image holds everything"


def test_rays_validation_catches_a_misspelt_key() -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = copy.deepcopy(load(RAY_UP))
    config["max_worker"] = config.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(prepare_config(config))


# -- token authentication ----------------------------------------------------------------

TOKEN_FILE = "~/.ray/auth_token"


def test_ray_up_nodes_run_with_token_authentication() -> None:
    raw = load(RAY_UP)
    options = raw["docker"]["run_options"]
    assert "--env RAY_AUTH_MODE=token" in options
    paths = [o.split("=", 1)[1] for o in options if o.startswith("--env RAY_AUTH_TOKEN_PATH=")]
    assert len(paths) == 1, options
    assert raw["file_mounts"] == {paths[0]: TOKEN_FILE}, "the local token must reach every node"
    for name, node in raw["available_node_types"].items():  # a node type may replace them
        assert "run_options" not in node.get("docker", {}), f"{name}: own run_options"
    config = prepared_ray_up_config()
    assert config["file_mounts"] == raw["file_mounts"]


TOKEN_LITERAL = re.compile(r"RAY_AUTH_TOKEN\s*[=:]\s*[\"']?([A-Za-z0-9+/_-]{16,})")


def test_no_token_value_in_infra_the_docs_or_the_readme() -> None:
    assert TOKEN_LITERAL.findall("RAY_AUTH_TOKEN=0123456789abcdef0123") == ["0123456789abcdef0123"]
    assert TOKEN_LITERAL.findall("RAY_AUTH_TOKEN=$(kubectl get secret raysurvey)") == []
    files = [p for p in INFRA.rglob("*") if p.is_file()] + [DEPLOY_MD, README]
    found = {str(p.relative_to(ROOT)): TOKEN_LITERAL.findall(p.read_text()) for p in files}
    assert not {k: v for k, v in found.items() if v}


@pytest.mark.parametrize("script", JOBS, ids=lambda p: p.name)
def test_a_job_run_by_a_python_without_the_project_says_so_in_one_line(script: Path) -> None:
    """What a job submitted from a shell without the venv meets: ``-S`` hides every
    site-packages (the system python's view), ``-E`` ignores PYTHONPATH."""
    run = subprocess.run(
        [sys.executable, "-S", "-E", str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and run.stdout == "" and len(lines) == 1, run.stderr[-2000:]
    assert lines[0].startswith(
        f"raysurvey's dependencies are not importable from {sys.executable} (No module named "
    )
    assert "activate the venv (source .venv/bin/activate)" in lines[0]


# -- README commands ----------------------------------------------------------------------


def readme_commands() -> list[str]:
    """Logical lines of the README's bash blocks, comments and ``[optional]`` parts cut."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s\[[^\]]*\]", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_readme_commands_run_real_scripts_and_subcommands_with_accepted_flags() -> None:
    from raysurvey.cli import build_parser

    parser = build_parser()
    checked = {"scripts": set(), "raysurvey": set()}
    for line in readme_commands():
        tokens = shlex.split(line, comments=True)
        command = script_command(tokens)
        if command:
            script, argv = command
            assert script.is_file(), f"README runs {script}, which does not exist"
            checked["scripts"].add(script.relative_to(ROOT).as_posix())
            if "..." not in argv:  # an elided command line: the script's existence only
                parse_with_script(script, argv)
        elif tokens[0] == "raysurvey":
            argv = [t for t in tokens[1:] if t != "..."]
            stderr = io.StringIO()
            try:
                with contextlib.redirect_stderr(stderr):
                    parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"README: `{line}` is refused by raysurvey:\n{stderr.getvalue()}")
            checked["raysurvey"].add(argv[0])
    assert {"jobs/classify_release.py", "jobs/train.py", "tune/sweep_attention.py"} <= checked[
        "scripts"
    ], checked
    assert {"read", "synth", "query"} <= checked["raysurvey"], checked


# -- the Dockerfile -------------------------------------------------------------------------


@cache
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    found, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        word, _, rest = (pending + text).partition(" ")
        found.append((word.upper(), rest.strip()))
        pending = ""
    return tuple(found)


BASE = re.compile(
    r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<major>\d)(?P<minor>\d+)-cu(?P<cuda>\d+)$"
)


def test_dockerfile_base_image_matches_the_ray_pin_and_python() -> None:
    bases = [v for k, v in dockerfile_instructions() if k == "FROM"]
    assert len(bases) == 1, bases
    match = BASE.match(bases[0])
    assert match, f"FROM {bases[0]}: not rayproject/ray:X.Y.Z-pyNN-cuNNN"
    assert match["ray"] == pins()["ray"], f"base image Ray {match['ray']} != pin {pins()['ray']}"
    python = Version(f"{match['major']}.{match['minor']}")
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert python in requires, f"base image Python {python} outside requires-python {requires}"


def test_dockerfile_installs_exactly_the_pyproject_pins() -> None:
    steps = dockerfile_instructions()
    copies = [i for i, (k, v) in enumerate(steps) if k == "COPY" and "pyproject.toml" in v]
    reads = [
        i
        for i, (k, v) in enumerate(steps)
        if k == "RUN"
        and "tomllib" in v
        and "['project']['dependencies']" in v
        and "pip install -r" in v
    ]
    assert copies and reads and copies[0] < reads[0], "install the pins from pyproject.toml"
    assert pins(), "pyproject.toml lists no dependencies"
    text = DOCKERFILE.read_text()
    for name, version in re.findall(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([0-9][\w.]*)", text):
        expected = pins().get(name.lower())
        assert expected in (None, version), f"Dockerfile pins {name}=={version}, not {expected}"
    assert any(k == "RUN" and "pip check" in v for k, v in steps), "run pip check"
    assert any(k == "RUN" and "pip install --no-deps ." in v for k, v in steps)
    labels = " ".join(v for k, v in steps if k == "LABEL")
    version = pyproject()["project"]["version"]
    assert f'org.opencontainers.image.version="{version}"' in labels


def test_dockerfile_copies_the_project_and_runs_as_ray_in_its_workdir() -> None:
    steps = dockerfile_instructions()
    users = [v for k, v in steps if k == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the image must not run as root"
    assert re.fullmatch(r"1000(:\d+)?", users[-1]), (
        "run as the base image's ray user by number (uid 1000), so runAsNonRoot can verify it"
    )
    assert workdir() == "/home/ray/raysurvey"
    sources = {
        source.rstrip("/")
        for k, v in steps
        if k == "COPY"
        for source in v.split()[:-1]
        if not source.startswith("--")
    }
    assert {"pyproject.toml", "README.md", "raysurvey", "jobs", "tune"} <= sources
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    for source in sources:  # the ignore file starts with `*`: each source is let back in
        assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is ignored"
    cmd = [v for k, v in steps if k in ("CMD", "ENTRYPOINT")]
    assert cmd and cmd[-1].startswith("["), "CMD in exec (JSON) form"


def test_no_latest_tags_and_one_image_everywhere() -> None:
    files = [p for p in INFRA.rglob("*") if p.is_file()] + [DEPLOY_MD]
    for path in files:
        text = path.read_text()
        assert not re.search(r":latest\b", text), f"{path.relative_to(ROOT)} uses a latest tag"
        for tag in re.findall(re.escape(IMAGE_REPO) + r"(?::([\w.-]+))?", text):
            assert tag == pyproject()["project"]["version"], (
                f"{path.relative_to(ROOT)}: {IMAGE_REPO}:{tag or '(no tag)'} is not {image()}"
            )
    assert f"-t {image()}" in DOCKERFILE.read_text(), "the Dockerfile documents its tag"
    assert image() in DEPLOY_MD.read_text()
    assert load(RAY_UP)["docker"]["image"] == image()
    for name, spec in cluster_specs():
        assert {c["image"] for _, c in all_containers(spec)} == {image()}, name
