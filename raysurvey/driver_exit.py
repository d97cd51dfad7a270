"""How a job's driver ends: disconnect from Ray while the interpreter is whole.

A driver that leaves Ray to its exit hook can crash in Ray's native threads as the
interpreter tears down (exit 139 after the job's last line was printed); ``ray job
submit`` then reports a finished job as FAILED. Disconnecting before exit avoids the
teardown race, and faulthandler puts the Python stacks in the job log if a native
crash still happens.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Callable
from typing import NoReturn


def run_driver(main: Callable[[], int | None]) -> NoReturn:
    """Run a job's ``main`` and exit with its code, disconnecting from Ray first."""
    faulthandler.enable()
    try:
        code = main()
    finally:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()
        sys.stdout.flush()
    sys.exit(code)
