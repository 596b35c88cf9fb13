"""`make run` stops cleanly on SIGTERM (or Ctrl-C), even when started in the background by a script.

A process started in the background by a shell script inherits SIGINT ignored, and `dagster dev`
maps SIGTERM onto its SIGINT handler: it then ignored both, and `make run`'s processes lingered
until SIGKILL (about 75 s in ``../shared/tools/main-job``). ``scripts/serve.sh`` runs it with
SIGINT restored, forwards one SIGINT and kills what is left after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from stacks import Stack, wait_for

from strata.settings import PROJECT_ROOT

#: slow; and one xdist worker runs every end-to-end test, one at a time (they start servers)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_stops_cleanly_on_sigterm(tmp_path):
    from pg_server import free_port

    port = free_port()
    env = {
        **os.environ,
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_TPCH_SF": "0.01",
        "DAGSTER_HOME": str(tmp_path / "data" / "dagster_home"),
    }
    for name in ("STRATA_LANDING_DIR", "STRATA_WAREHOUSE_PATH"):
        env.pop(name, None)
    log = (tmp_path / "make_run.log").open("w")
    proc = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a script's `make run &` is
    )
    try:
        wait_for(lambda: Stack._ok(f"http://127.0.0.1:{port}/server_info"), 300, 2, "make run's UI")
        os.killpg(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        # make itself is reaped by poll(); serve.sh exits only once dagster dev's own process group is gone
        wait_for(lambda: proc.poll() is not None and not group_alive(proc.pid), 60, 0.5, "make run's processes gone")
        stopped_in = time.monotonic() - started
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    text = (tmp_path / "make_run.log").read_text()
    print(f"make run stopped {stopped_in:.1f} s after SIGTERM")  # noqa: T201
    assert "Dagster services shut down." in text, text[-3000:]
    assert "did not stop within" not in text
