"""A throwaway PostgreSQL cluster for the test run.

`initdb` as user `postgres` into a temporary folder, `pg_ctl start` on a
free loopback port, one database per use; everything is removed at the end.
ONESTORY_TEST_PG_URL points the tests at an existing server instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


class PgUnavailable(Exception):
    pass


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        initdb = shutil.which("initdb")
        if initdb is None:
            raise PgUnavailable("no initdb found (apt-get install postgresql)")
        return Path(initdb).parent
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="onestory-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise PgUnavailable(f"{' '.join(args[:1])} failed: {result.stderr.strip()[-500:]}")

    def start(self) -> None:
        if self._as_postgres:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PgUnavailable("running as root but there is no 'postgres' user") from exc
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C")
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after `halt`) on the same port and data."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200 -c fsync=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def halt(self) -> None:
        """Stop the server, keeping its data, as an outage would."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(PgUnavailable):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def create_database(admin_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    name = f"onestory_{uuid.uuid4().hex[:12]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
