"""A throwaway PostgreSQL 15 server for tests, from Debian's ``postgresql`` package binaries.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` system user
(created by the Debian package). It listens on 127.0.0.1 on a free port, with trust auth.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("STRATA_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def env(self, prefix: str) -> dict[str, str]:
        """Connection environment variables named ``<prefix>_PG_*``."""
        return {
            f"{prefix}_PG_HOST": self.host,
            f"{prefix}_PG_PORT": str(self.port),
            f"{prefix}_PG_DATABASE": "postgres",
            f"{prefix}_PG_USER": self.user,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def start() -> PostgresServer:
    """initdb in a new temporary folder and start the server; :func:`stop` it afterwards.

    The folder is made directly under the system temp dir: the ``postgres`` user must be able to
    reach it, which pytest's private (0700) temp folders do not allow.
    """
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="strata-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        shutil.chown(root, pg.pw_uid, pg.pw_gid)
    user = "strata"
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    # wal_level=logical: change data capture tests decode the WAL through replication slots
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
        "-c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20"
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    return PostgresServer("127.0.0.1", port, user, data)


def stop(server: PostgresServer) -> None:
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(server.data_dir), "-m", "fast", "-w", "stop"]),
        check=False,
        capture_output=True,
    )
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)
