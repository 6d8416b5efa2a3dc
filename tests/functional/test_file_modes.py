"""The SQLite files (data, key store, their -wal/-shm) and the instance folder
are the owner's alone: no other account on the host reads them, whatever the
umask. Checked after `onestory init` and after a real `onestory serve` has
written through both databases."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AUDIT_KEY, INDEX_KEY
from tests.functional.test_serve import SECRET, checked, clean_env, onestory, server, wait_healthy
from tests.pg import free_port

DATABASE_FILES = ("onestory.db", "keys.db")


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask (files 0644, folders 0755), for this test's
    subprocesses too."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def modes(folder: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for path in sorted(folder.iterdir()):
        found[path.name] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def assert_private(folder: Path) -> None:
    found = modes(folder)
    assert found["."] == oct(0o700), found
    for name, mode in found.items():
        if name != ".":
            assert int(mode, 8) & 0o077 == 0, found


def test_init_creates_private_files(tmp_path: Path, keyring_file: Path,
                                    loose_umask: None) -> None:
    env = clean_env(tmp_path, ONESTORY_KEYRING_FILE=str(keyring_file),
                    ONESTORY_INDEX_KEY=INDEX_KEY, ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY)
    checked(onestory(env, "init"))
    instance = tmp_path / "instance"
    assert {name for name in DATABASE_FILES} <= {p.name for p in instance.iterdir()}
    assert_private(instance)


def test_serving_keeps_every_database_file_private(tmp_path: Path, keyring_file: Path,
                                                   loose_umask: None) -> None:
    env = clean_env(tmp_path, ONESTORY_SECRET_KEY=SECRET,
                    ONESTORY_KEYRING_FILE=str(keyring_file), ONESTORY_INDEX_KEY=INDEX_KEY,
                    ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY)
    checked(onestory(env, "init"))
    checked(onestory(env, "agency", "add", "health-centre", "--name", "Health centre",
                     "--kind", "health"))
    checked(onestory(env, "user", "add", "nurse1", "--agency", "health-centre",
                     "--role", "practitioner"))
    token = checked(onestory(env, "token", "create", "nurse1")).strip()
    instance = tmp_path / "instance"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    import urllib.request

    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        # A new family writes to both databases (its data key to the key store).
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            f"{base}/api/v1/families", method="POST",
            data=json.dumps({"display_name": "Private Family"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 201
        names = {p.name for p in instance.iterdir()}
        # While the server holds them open, the write-ahead logs exist too.
        assert {f"{db}{suffix}" for db in DATABASE_FILES for suffix in ("", "-wal", "-shm")
                } <= names, names
        assert_private(instance)
    assert_private(instance)
