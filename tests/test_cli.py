"""The ``raysurvey`` command line: demo summary, read, readers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raysurvey.cli import main
from raysurvey.io.examples import EXAMPLE_BUILDERS


def test_examples_prints_a_row_per_example_file(tmp_path, capsys) -> None:
    assert main(["examples", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 read, 0 failed" in out
    for layout in ("lamost_dr1", "lamost_image", "lamost_table", "sdss_spec", "sdss_spspec"):
        assert layout in out
    assert len(list(tmp_path.iterdir())) == 2 * len(EXAMPLE_BUILDERS)


def test_read_reports_errors_per_file_and_fails(tmp_path, capsys) -> None:
    good = tmp_path / "good.fits"
    good.write_bytes(EXAMPLE_BUILDERS["lamost_image"]().data)
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"<html>502 Bad Gateway</html>")
    assert main(["read", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "not_fits" in out and "1 read, 1 failed" in out


def test_module_entry_point_and_readers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "raysurvey.cli", "readers"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "lamost_table" in result.stdout and "sdss_spspec" in result.stdout


class _FakeRay:
    """Stands in for the ray module: records whether the driver disconnected."""

    def __init__(self, initialised: bool):
        self.initialised, self.shutdowns = initialised, 0

    def is_initialized(self) -> bool:
        return self.initialised

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.initialised = False


@pytest.mark.parametrize("initialised", [True, False])
def test_a_job_driver_disconnects_from_ray_and_exits_with_mains_code(monkeypatch, initialised):
    from raysurvey.driver_exit import run_driver

    fake = _FakeRay(initialised)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(SystemExit) as exited:
        run_driver(lambda: 3)
    assert exited.value.code == 3
    assert fake.shutdowns == (1 if initialised else 0)

    fake = _FakeRay(True)
    monkeypatch.setitem(sys.modules, "ray", fake)

    def failing() -> int:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):  # the error is not swallowed
        run_driver(failing)
    assert fake.shutdowns == 1
