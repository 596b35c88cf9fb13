"""Strata's two process layouts, started for real by end-to-end tests.

* :class:`EmbeddedStack`: ``dagster dev`` on the project's ``dagster.yaml`` and ``workspace.yaml``
  (SQLite instance storage), as ``make run`` starts it.
* :class:`ProdStack`: the strata gRPC code server, dagster-daemon and dagster-webserver as
  separate processes, on a real PostgreSQL instance storage. The same files as ``make prod``:
  ``deploy/dagster.prod.yaml`` is the instance's dagster.yaml; the workspace is
  ``deploy/workspace.grpc.yaml`` with the test's free port instead of 4266.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pg_server import free_port

from strata.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


@dataclass
class Stack:
    """Processes and their environment. ``url`` is the webserver's root."""

    env: dict[str, str]
    home: Path
    logs: Path
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("a")
        self.procs[name] = subprocess.Popen(
            args, env=self.env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start(self) -> None:
        """Start the processes; wait until the UI answers."""
        raise NotImplementedError

    @contextmanager
    def instance(self):
        """A DagsterInstance on the stack's ``DAGSTER_HOME``, with ``DAGSTER_HOME`` set meanwhile (as
        Dagster's own tools have it: the instance's storages may read it)."""
        import dagster as dg

        previous = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(self.home)
        try:
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                yield instance
        finally:
            if previous is None:
                del os.environ["DAGSTER_HOME"]
            else:
                os.environ["DAGSTER_HOME"] = previous

    def start_daemon(self) -> None:
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)])

    def kill_daemon(self) -> None:
        """SIGKILL the daemon (no clean shutdown), as a crashed pod or machine would."""
        proc = self.procs.pop("daemon")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """POST to the webserver's GraphQL endpoint; return ``data`` (raises on errors)."""
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    @staticmethod
    def _ok(url: str) -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ready, what: str, timeout_seconds: float = 180) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if ready():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: see {self.logs / (name + '.log')}")
            time.sleep(1)
        raise TimeoutError(f"{what} did not start in {timeout_seconds} s; logs in {self.logs}")


def wait_for(condition, timeout_seconds: float, interval: float = 2.0, what: str = "condition"):
    """Poll ``condition()`` until it returns a truthy value; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not met after {timeout_seconds} s")


@dataclass
class ProdStack(Stack):
    """The production layout: code server, daemon and webserver; PostgreSQL instance storage."""

    def start(self) -> None:
        """Start the code server, then the daemon and the webserver; wait until the UI answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "dagster.prod.yaml").read_text())
        self.workspace.write_text(
            (PROJECT_ROOT / "deploy" / "workspace.grpc.yaml").read_text().replace("4266", str(self.grpc_port))
        )
        self._spawn(
            "code_server",
            [
                str(BIN / "dagster"),
                "api",
                "grpc",
                "-m",
                "strata.definitions",
                "-a",
                "defs",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.grpc_port),
            ],
        )
        self._wait(
            lambda: (
                subprocess.run(
                    [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(self.grpc_port)],
                    capture_output=True,
                    env=self.env,
                ).returncode
                == 0
            ),
            "code server",
        )
        self.start_daemon()
        self._spawn(
            "webserver",
            [str(BIN / "dagster-webserver"), "-w", str(self.workspace), "-h", "127.0.0.1", "-p", str(self.web_port)],
        )
        self._wait(lambda: self._ok(f"{self.url}/server_info"), "webserver")


@dataclass
class EmbeddedStack(Stack):
    """The embedded default: ``dagster dev`` with the project's dagster.yaml (SQLite), as ``make run``."""

    def start(self) -> None:
        """Start ``dagster dev``; wait until the UI answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        self._spawn(
            "dagster_dev",
            [
                str(BIN / "dagster"),
                "dev",
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.web_port),
            ],
        )
        self._wait(lambda: self._ok(f"{self.url}/server_info"), "dagster dev")
