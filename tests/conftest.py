"""Shared fixtures: example files, an S3 endpoint on 127.0.0.1 (moto), environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
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
def ray_cluster() -> Iterator[None]:
    """One local Ray instance per test session (2 CPUs, loopback, no dashboard needed)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
