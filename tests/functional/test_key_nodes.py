"""Several app nodes, one key store: the active master version is agreed in
the key store, and `onestory keys add / activate / retire` respect every
node seen in the last minutes.

The nodes here are in-process applications, each with its own instance
folder (so its own node id) and its own copy of the keyring file, on the
real clock (heartbeats are judged against the command line's clock). The
node of the `app` fixture shares the command line's instance folder and
keyring file: it is "this node" for `onestory keys ...`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from coordination.app import create_app
from coordination.config import Settings
from coordination.crypto import Keyring, write_secret_file
from coordination.db import make_engine
from coordination.keystore import KeyStore
from coordination.model import Family
from coordination.nodes import node_id
from coordination.runtime import utc_now
from tests.cli import assert_ok, assert_one_line_failure, run
from tests.conftest import Api
from tests.web import post_form, set_passwords, signed_in


@dataclass
class Node:
    app: Flask
    api: Api
    settings: Settings

    @property
    def id(self) -> str:
        return node_id(self.settings.instance)

    def copy_keyring_from(self, source: Path) -> None:
        """What operations do: copy the keyring file to this node (0600)."""
        assert self.settings.keyring_file is not None
        write_secret_file(self.settings.keyring_file, source.read_text(), replace=True)

    def ping(self) -> None:
        """Any request; it beats when a beat is due or its keyring changed."""
        assert self.api.get("/healthz").status_code == 200


@pytest.fixture
def start_node(settings: Settings, api: Api, keyring_file: Path,
               tmp_path: Path) -> Iterator[Callable[[str], Node]]:
    """Another app node: its own instance folder and copy of the keyring file
    as it is now, the same databases, a heartbeat due every second."""
    started: list[Flask] = []

    def start(name: str) -> Node:
        folder = tmp_path / name
        own = replace(settings, instance=folder, keyring_file=folder / "keyring.json",
                      node_heartbeat_seconds=1)
        write_secret_file(folder / "keyring.json", keyring_file.read_text())
        app = create_app(own, clock=utc_now)
        started.append(app)
        return Node(app, Api(app.test_client(), api.tokens), own)

    yield start
    for app in started:
        app.extensions["onestory"].dispose()


def keystore(settings: Settings) -> KeyStore:
    return KeyStore.from_url(settings.keystore_url)


def counts(settings: Settings) -> dict[int, int]:
    store = keystore(settings)
    try:
        return store.count_under()
    finally:
        store.engine.dispose()


def active(settings: Settings) -> int:
    store = keystore(settings)
    try:
        return store.active_version()
    finally:
        store.engine.dispose()


def families(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Family)).scalar_one())
    finally:
        engine.dispose()


def versions_in(path: Path) -> list[int]:
    return sorted(int(v) for v in json.loads(path.read_text())["keys"])


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    return lines


# --- a node without the active version ------------------------------------------------


def test_a_node_without_the_active_version_refuses_loudly_and_wraps_nothing(
        app: Flask, api: Api, settings: Settings, start_node: Callable[[str], Node],
        cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keyring_file: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    before = api.new_family("nurse1", display_name="Before Rotation")
    assert active(settings) == 1
    assert_ok(run(capsys, "keys", "add"))
    late = start_node("late")  # copied after the first `keys add`: holds 1 and 2
    assert_ok(run(capsys, "keys", "add"))  # version 3, not copied to that node
    assert_ok(run(capsys, "keys", "activate", "3"))  # the late node was not seen yet
    assert versions_in(late.settings.keyring_file or Path()) == [1, 2]
    assert active(settings) == 3 and counts(settings) == {3: 1}
    set_passwords(app)
    caplog.set_level(logging.ERROR)
    caplog.clear()

    # API: a new family is refused (503 problem+json), wrapped under nothing,
    # in particular not under the node's own newest version (2).
    response = late.api.post("/api/v1/families", "nurse1", json={"display_name": "Refused"})
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "urn:onestory:problem:data-unavailable"
    assert "Refused" not in response.get_data(as_text=True)
    [line] = refusals(caplog)
    assert "master key version 3" in line and "active" in line
    assert "\n" not in line
    assert counts(settings) == {3: 1} and families(settings) == 1

    # A family whose key is under version 3 cannot be read there either.
    response = late.api.get(f"/api/v1/families/{before}", "nurse1")
    assert response.status_code == 503
    assert "Before Rotation" not in response.get_data(as_text=True)
    [line] = refusals(caplog)
    assert "master key version 3" in line

    # The web: a plain error page, the same single line in the log.
    client = signed_in(late.app, "nurse1")
    refused = post_form(client, "/staff/families/new", "/staff/families/new",
                        {"display_name": "Refused On The Web"})
    assert refused.status_code == 503  # type: ignore[attr-defined]
    assert refused.content_type.startswith("text/html")  # type: ignore[attr-defined]
    [line] = refusals(caplog)
    assert "master key version 3" in line
    assert counts(settings) == {3: 1} and families(settings) == 1

    # This node, holding version 3, goes on working meanwhile.
    assert api.get(f"/api/v1/families/{before}", "nurse1").status_code == 200
    api.new_family("nurse1", display_name="On The Good Node")
    assert counts(settings) == {3: 2}

    # Once the keyring file is copied there, the late node works at once.
    late.copy_keyring_from(keyring_file)
    assert late.api.get(f"/api/v1/families/{before}", "nurse1").status_code == 200
    late.api.new_family("nurse1", display_name="After The Copy")
    assert counts(settings) == {3: 3}
    assert refusals(caplog) == []


# --- activate and retire wait for every live node --------------------------------------


def test_activate_and_retire_refuse_while_a_live_node_would_be_left_without_a_key(
        api: Api, settings: Settings, start_node: Callable[[str], Node],
        cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        keyring_file: Path) -> None:
    family = api.new_family("nurse1", display_name="Kept Family")
    second = start_node("second")
    second.ping()
    assert_ok(run(capsys, "keys", "add"))
    assert versions_in(keyring_file) == [1, 2]
    document = keyring_file.read_text()

    # The second node was seen a moment ago and does not hold version 2.
    message = assert_one_line_failure(run(capsys, "keys", "activate", "2"))
    assert second.id in message and "version 2" in message
    assert "copy the keyring file" in message and "every node seen" in message
    assert active(settings) == 1 and counts(settings) == {1: 1}
    assert keyring_file.read_text() == document
    # So does a single-node rotation, which adds a version but activates nothing.
    message = assert_one_line_failure(run(capsys, "keys", "rotate"))
    assert "version 3 was added" in message and second.id in message
    assert active(settings) == 1 and versions_in(keyring_file) == [1, 2, 3]
    # A version this node does not hold is refused too.
    message = assert_one_line_failure(run(capsys, "keys", "activate", "7"))
    assert "no master key version 7" in message

    # Copied: the node re-reads its file on its next request and says so.
    second.copy_keyring_from(keyring_file)
    second.ping()
    status = run(capsys, "keys", "status")
    assert_ok(status)
    assert f"  {second.id}: seen" in status.out and "holds 1, 2, 3; read 1 as active" in status.out
    assert_ok(run(capsys, "keys", "activate", "2"))
    assert active(settings) == 2 and counts(settings) == {2: 1}

    # Retire: never the active version, nor one a data key is still under.
    message = assert_one_line_failure(run(capsys, "keys", "retire", "2"))
    assert "active" in message
    store = keystore(settings)
    try:
        store.set_active(3, utc_now())  # an activation whose re-wrap has not run yet
        message = assert_one_line_failure(run(capsys, "keys", "retire", "2"))
        assert "1 data keys are still wrapped under version 2" in message
        assert "rewrap" in message
        store.set_active(2, utc_now())
    finally:
        store.engine.dispose()

    # The second node last reported version 1 as active: it may not have seen
    # the activation yet.
    message = assert_one_line_failure(run(capsys, "keys", "retire", "1"))
    assert second.id in message and "reported version 1 as active" in message
    assert "heartbeat" in message
    assert versions_in(keyring_file) == [1, 2, 3]

    # A node that lacks the active version may still need the old one.
    stale = start_node("stale")
    stale.copy_keyring_from(Path(str(keyring_file) + ".v1"))  # written below
    time.sleep(1.1)  # the second node's next heartbeat is due
    second.ping()
    stale.ping()
    message = assert_one_line_failure(run(capsys, "keys", "retire", "1"))
    assert stale.id in message and "lacks the active version 2" in message
    assert versions_in(keyring_file) == [1, 2, 3]
    stale.copy_keyring_from(keyring_file)
    stale.ping()

    retired = run(capsys, "keys", "retire", "1")
    assert_ok(retired)
    assert "copy this file to every node" in retired.out
    assert versions_in(keyring_file) == [2, 3]
    assert Keyring.from_file(keyring_file).active == 2
    for node in (second, stale):
        node.copy_keyring_from(keyring_file)
        assert node.api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200


@pytest.fixture(autouse=True)
def _first_keyring_kept(keyring_file: Path) -> None:
    """A copy of the keyring as first made (version 1 only), for a stale node."""
    write_secret_file(Path(str(keyring_file) + ".v1"), keyring_file.read_text())


# --- one node, SQLite or PostgreSQL -------------------------------------------------------


def test_one_node_rotates_in_two_phases_or_at_once(
        settings: Settings, api: Api, clock: Any, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], keyring_file: Path) -> None:
    """The running server of this node (same instance folder and keyring file
    as the command) never holds up its own node's commands, even seen a
    moment ago with an older keyring."""
    own = create_app(settings, clock=utc_now)
    try:
        node = Api(own.test_client(), api.tokens)
        family = node.new_family("nurse1", display_name="Single Node")
        added = run(capsys, "keys", "add")
        assert_ok(added)
        assert "keys activate 2" in added.out
        assert active(settings) == 1
        node.new_family("nurse1", display_name="Still Under One")
        assert counts(settings) == {1: 2}
        activated = run(capsys, "keys", "activate", "2")
        assert_ok(activated)
        assert "re-wrapped 2 data keys" in activated.out
        assert counts(settings) == {2: 2}
        assert_ok(run(capsys, "keys", "retire", "1"))
        assert_ok(run(capsys, "keys", "rotate"))
        assert counts(settings) == {3: 2} and active(settings) == 3
        assert_ok(run(capsys, "keys", "retire", "2"))
        assert versions_in(keyring_file) == [3]
        assert node.get(f"/api/v1/families/{family}", "nurse1").get_json()["display_name"] \
            == "Single Node"
        node.new_family("nurse1", display_name="Under Three")
        assert counts(settings) == {3: 3}
        status = run(capsys, "keys", "status")
        assert_ok(status)
        assert status.out.splitlines()[:2] == [
            "active master key version (agreed by every node through the key store): 3",
            "version 3 (active): 3 data keys"]
        assert f"{node_id(settings.instance)}: seen" in status.out
    finally:
        own.extensions["onestory"].dispose()


# --- the heartbeat is cheap ------------------------------------------------------------


def test_a_process_beats_once_per_interval_and_at_once_when_its_keyring_changes(
        settings: Settings, api: Api, keyring_file: Path,
        start_node: Callable[[str], Node]) -> None:
    from sqlalchemy import event

    node = start_node("quiet")
    node.app.extensions["onestory"].heartbeat.interval = 60  # the production default
    engine = node.app.extensions["onestory"].keystore.engine
    beats: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "key_nodes" in statement:
            beats.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        family = node.api.new_family("nurse1", display_name="Quiet Family")
        for _ in range(10):
            assert node.api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
        assert len(beats) == 1  # the first request's, none per request after it
        keyring = Keyring.from_file(keyring_file)
        keyring.add_version()
        keyring.save()
        node.copy_keyring_from(keyring_file)
        node.ping()
        node.ping()
        assert len(beats) == 2  # the changed keyring is reported at once, once
    finally:
        event.remove(engine, "before_cursor_execute", count)
    store = keystore(settings)
    try:
        [report] = [n for n in store.nodes() if n.node_id == node.id]
    finally:
        store.engine.dispose()
    assert report.versions == {1, 2} and report.active_version == 1
