"""Shared fixtures: example files, an S3 endpoint on 127.0.0.1 (moto), environment."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Keep every service on loopback and offline, before anything imports Ray or the hub.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on 127.0.0.1 (moto's server), with fake credentials in the env.

    ``AWS_ENDPOINT_URL`` makes bare ``s3://`` URIs resolve to it in s3fs, pyarrow and
    Ray Data, so the code under test uses its ordinary S3 path.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the moto endpoint; returns ``s3://name``."""
    import s3fs

    name = (
        "rs-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    )
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, skip_instance_cache=True)
    fs.mkdir(name)
    s3fs.S3FileSystem.clear_instance_cache()
    return f"s3://{name}"


@pytest.fixture(scope="session")
def templates_dir() -> str:
    """Redrock templates from $RAYSURVEY_TEMPLATES, else ../shared/templates/redrock.

    Skips, saying why, when neither exists: never a silent fallback to another source.
    """
    candidates = [
        os.environ.get("RAYSURVEY_TEMPLATES"),
        str(REPO_ROOT.parent / "shared/templates/redrock"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "rrtemplate-star-G.fits").exists():
            return candidate
    pytest.skip(
        "no Redrock templates: set RAYSURVEY_TEMPLATES or place them at ../shared/templates/redrock"
    )


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """Real LAMOST/SDSS files with pipeline labels: $RAYSURVEY_REALDATA, else
    ../shared/realdata. Skips, saying why, when neither exists."""
    for candidate in (
        os.environ.get("RAYSURVEY_REALDATA"),
        str(REPO_ROOT.parent / "shared/realdata"),
    ):
        if candidate and (Path(candidate) / "MANIFEST.csv").exists():
            return Path(candidate)
    pytest.skip("no real spectra: set RAYSURVEY_REALDATA or place them at ../shared/realdata")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray instance per test session (2 CPUs, loopback, no dashboard needed)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@dataclass(frozen=True)
class HeadCluster:
    """A ``ray start --head`` cluster of our own: its GCS address and Jobs API URL."""

    address: str
    dashboard: str
    temp_dir: str
    #: What a client process needs in its environment to talk to this cluster (its
    #: token, when it has token authentication on); None: the test's own environment.
    env: dict[str, str] | None = None


def processes_matching(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (Linux /proc; no psutil needed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def _stop_by_temp_dir(temp_dir: str) -> None:
    """Kill the processes of the cluster that lives in ``temp_dir`` (never ``ray stop``)."""
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_matching(temp_dir)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (3 if sig == signal.SIGTERM else 10)
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]


@pytest.fixture(scope="module")
def ray_head(ray_cluster, s3_endpoint) -> Iterator[HeadCluster]:
    """A separate local cluster started with ``ray start --head`` on free ports.

    For what needs a real cluster address: ``ray job submit`` and jobs run as
    subprocesses (kill and resume). It starts after the in-process cluster
    (``ray_cluster``), so that one is never mistaken for this, and after the S3
    endpoint, so its workers inherit the endpoint and credentials. Stopped by PID at
    the end of the module, so no other test shares the machine with it.
    """
    import subprocess
    import sys
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="rsh", dir="/tmp")  # short: socket paths
    gcs, dashboard = free_port(), free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    command = [
        ray_bin, "start", "--head", f"--port={gcs}", "--node-ip-address=127.0.0.1",
        f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
        f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
        "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        yield HeadCluster(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", temp_dir)
    finally:
        _stop_by_temp_dir(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_two_nodes(ray_cluster) -> Iterator[HeadCluster]:
    """A two-node cluster shaped like the deployed ones (infra/): a head started with
    ``ray start --head --num-cpus=0`` (GCS, dashboard, Jobs API, job drivers) and a
    worker node joined with ``ray start --address`` holding the 2 CPUs, each with its
    own ports and temp dir, so every task and actor runs on the worker node.

    A second node needs ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` (Ray then puts the
    nodes on the machine's own address, not the loopback one). Token authentication is
    on, as on users' clusters: a token generated here reaches the head, the worker and
    every client (``env``) as ``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN``, only in
    these processes' environments. Talk to it through its Jobs API (``dashboard``) with
    ``env``. Stopped by PID.
    """
    import secrets
    import subprocess
    import sys
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="rs2", dir="/tmp")  # short: socket paths
    gcs, dashboard = free_port(), free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    client = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN_PATH"} | auth
    env = client | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head = [
        ray_bin, "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
        "--dashboard-host=127.0.0.1", "--include-dashboard=true",
        f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
        "--num-cpus=0", "--num-gpus=0", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    worker = [
        ray_bin, "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=2", "--num-gpus=0",
        f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}", f"--temp-dir={temp_dir}/w",
    ]  # fmt: skip
    try:
        for command in (head, worker):
            started = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
            if started.returncode:
                raise RuntimeError(f"{command[1:3]} failed: {started.stderr[-2000:]}")
        yield HeadCluster(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", temp_dir, client)
    finally:
        _stop_by_temp_dir(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
