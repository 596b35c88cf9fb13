"""The suite's own scheduling: ``make test``'s end-to-end group really runs on one worker.

The end-to-end tests (``xdist_group("e2e")``) start servers, many processes and Chromium; two of
them at once on a 2-core machine starve each other. pytest 9.2 with pytest-xdist 3.8 silently
stopped grouping (xdist renames ``Node._nodeid``, which pytest 9.2 no longer reads), so this runs
the installed pytest and xdist as ``make test`` does on two small grouped modules.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter


def test_the_e2e_group_runs_on_one_worker(tmp_path):
    for module in ("test_first", "test_second"):
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(
                """
                import pytest

                pytestmark = [pytest.mark.xdist_group("e2e")]


                @pytest.mark.parametrize("i", range(4))
                def test_grouped(i):
                    pass
                """
            )
        )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    workers = Counter(line.split()[0] for line in out.splitlines() if "PASSED" in line)
    assert sum(workers.values()) == 8, out
    assert len(workers) == 1, f"the group was split across workers: {dict(workers)}"
