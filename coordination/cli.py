"""The `onestory` command line. Every failure is one line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coordination import accounts, migrate
from coordination.config import ConfigError, Settings, load_settings
from coordination.crypto import Keyring, KeyringError, VaultError
from coordination.db import is_write_conflict, retry_on_conflict
from coordination.errors import OneStoryError
from coordination.keystore import NoActiveVersion, NodeReport
from coordination.runtime import Runtime

T = TypeVar("T")
WORKERS = 2  # `onestory serve`'s processes by default (PostgreSQL)
THREADS = 4  # threads per process
SQLITE_THREADS = 8  # threads of the one process on SQLite (their transactions take turns)


class CliState:
    def __init__(self) -> None:
        self._runtime: Runtime | None = None
        self.settings_override: Settings | None = None

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.dispose()
            self._runtime = None

    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime.build(self.settings_override or load_settings())
        return self._runtime


pass_state = click.make_pass_decorator(CliState, ensure=True)


def _use_case(rt: Runtime, work: Callable[[Session], T]) -> T:
    """Run one use case in a session of its own, again whole when other
    writers (the running server) refuse its write (`retry_on_conflict`)."""
    with rt.sessions() as session:
        return retry_on_conflict(session, lambda: work(session))


def _require_schema(rt: Runtime, keystore: bool = False) -> None:
    if not migrate.is_current(rt.engine):
        raise click.ClickException("the database schema is not current: run `onestory init`")
    if keystore and not migrate.is_current(rt.keystore.engine, keystore=True):
        raise click.ClickException("the key store schema is not current: run `onestory init`")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """OneStory: one joint consent form, a minimal shared record."""


@cli.command()
@pass_state
def init(state: CliState) -> None:
    """Create or upgrade the schema (idempotent)."""
    rt = state.runtime()
    migrate.upgrade(rt.engine)
    migrate.upgrade(rt.keystore.engine, keystore=True)
    click.echo(f"schema is current ({_safe_url(rt.settings.database_url)}); "
               f"key store is current ({_safe_url(rt.settings.keystore_url)})")
    from coordination.casework import search_index

    try:
        with rt.sessions() as session:
            # Keys are read only when there are families to index.
            left = (search_index.left_to_index(session, rt.vault)
                    if search_index.any_family(session) else 0)
    except (ConfigError, KeyringError):
        left = 0  # the schema needs no key; without the index key this cannot be told
    if left:
        # After an upgrade to 0008, a restore or a new index key (see README).
        click.echo(f"{left} families are not yet in the search index under this index key: "
                   "run `onestory search reindex`")


@cli.group()
def agency() -> None:
    """Manage agencies."""


@agency.command("add")
@click.argument("slug")
@click.option("--name", required=True, help="The agency's name.")
@click.option("--kind", required=True, help="health, physiotherapy, ecec, school, ngo, ...")
@click.option("--minimal-data", is_flag=True, help="Record families by pseudonym only.")
@click.option("--protection-holds", is_flag=True,
              help="Its coordinators may place protection holds.")
@click.option("--emergency-access", is_flag=True,
              help="Its practitioners and coordinators may break the glass.")
@click.option("--area", "area_items", multiple=True, metavar="CODE=NAME",
              help="An area (district code and name) it may give a family. Repeatable.")
@pass_state
def agency_add(state: CliState, slug: str, name: str, kind: str, minimal_data: bool,
               protection_holds: bool, emergency_access: bool,
               area_items: tuple[str, ...]) -> None:
    """Add an agency."""
    added_areas = _parse_areas(area_items)
    rt = state.runtime()
    _require_schema(rt)
    _use_case(rt, lambda session: accounts.add_agency(session, slug, name, kind, minimal_data,
                                                      rt.now(), emergency_access,
                                                      protection_holds=protection_holds))
    click.echo(f"agency {slug} added" + (" (minimal-data mode)" if minimal_data else "")
               + (" (may place protection holds)" if protection_holds else "")
               + (" (may break the glass)" if emergency_access else ""))
    if added_areas:
        _set_areas(rt, slug, added_areas, [])


def _parse_areas(items: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        code, sep, name = item.partition("=")
        if not sep or not code.strip() or not name.strip():
            raise click.ClickException(f"--area {item!r}: use CODE=NAME, such as "
                                       "0301-01=Gamle Oslo")
        parsed[code.strip()] = name.strip()
    return parsed


def _set_areas(rt: Runtime, slug: str, add: dict[str, str], remove: list[str]) -> None:
    from coordination.casework import areas

    now_areas = _use_case(rt, lambda session: [
        (a.code, a.name) for a in areas.set_agency_areas(session, slug, add, remove, rt.now())])
    shown = "; ".join(f"{code}={name}" for code, name in now_areas) or "none"
    click.echo(f"agency {slug} areas: {shown}")


@agency.command("set")
@click.argument("slug")
@click.option("--name-in", "names", multiple=True, metavar="LANG=NAME",
              help="The agency's name in a language (tr, ar, nb, ...); LANG= removes it. "
                   "Repeatable.")
@click.option("--protection-holds", "holds", type=click.Choice(["on", "off"]),
              help="Whether its coordinators may place protection holds.")
@click.option("--emergency-access", "emergency", type=click.Choice(["on", "off"]),
              help="Whether its practitioners and coordinators may break the glass.")
@click.option("--area", "area_items", multiple=True, metavar="CODE=NAME",
              help="Add an area it may give a family, or rename one. Repeatable.")
@click.option("--remove-area", "removed_areas", multiple=True, metavar="CODE",
              help="Remove an area from its list (families keep theirs). Repeatable.")
@pass_state
def agency_set(state: CliState, slug: str, names: tuple[str, ...], holds: str | None,
               emergency: str | None, area_items: tuple[str, ...],
               removed_areas: tuple[str, ...]) -> None:
    """Change an agency: its names in other languages, whether it may place
    protection holds, whether it may break the glass, its areas."""
    added_areas = _parse_areas(area_items)
    if set(added_areas) & set(removed_areas):
        raise click.ClickException("an area cannot be both added and removed: "
                                   + ", ".join(sorted(set(added_areas) & set(removed_areas))))
    parsed: dict[str, str | None] = {}
    for item in names:
        language, sep, name = item.partition("=")
        if not sep:
            raise click.ClickException(f"--name-in {item!r}: use LANG=NAME, such as "
                                       "tr=Aile merkezi")
        parsed[language.strip()] = name.strip() or None
    if not parsed and holds is None and emergency is None and not (
            added_areas or removed_areas):
        raise click.ClickException("nothing to change: give --name-in LANG=NAME, "
                                   "--protection-holds on|off, --emergency-access on|off, "
                                   "--area CODE=NAME or --remove-area CODE")
    rt = state.runtime()
    _require_schema(rt)
    if added_areas or removed_areas:
        _set_areas(rt, slug, added_areas, list(removed_areas))
    if holds is not None:
        _use_case(rt, lambda session: accounts.set_protection_holds(
            session, slug, holds == "on", rt.now()))
        click.echo(f"agency {slug} protection holds: {holds}")
    if emergency is not None:
        _use_case(rt, lambda session: accounts.set_agency_emergency_access(
            session, slug, emergency == "on", rt.now()))
        click.echo(f"agency {slug} emergency access: {emergency}")
    if not parsed:
        return
    now_names = _use_case(rt, lambda session: accounts.set_agency_names(
        session, slug, parsed, rt.now()))
    shown = "; ".join(f"{lang}: {name}" for lang, name in now_names.items()) or "none"
    click.echo(f"agency {slug} names in other languages: {shown}")


@agency.command("oidc")
@click.argument("slug")
@click.option("--issuer", help="The provider's issuer URL (https).")
@click.option("--client-id", help="OneStory's client id at that provider.")
@click.option("--remove", is_flag=True, help="Stop offering sign-in through a provider.")
@pass_state
def agency_oidc(state: CliState, slug: str, issuer: str | None, client_id: str | None,
                remove: bool) -> None:
    """Let the agency's staff sign in through its own OpenID Connect provider.

    Register OneStory at the provider with the redirect URI
    https://<host>/sign-in/oidc/<slug>/callback; a client secret, if the
    provider issues one, goes in ONESTORY_OIDC_CLIENT_SECRETS_FILE."""
    if remove == bool(issuer or client_id):
        raise click.ClickException("give --issuer and --client-id, or --remove")
    rt = state.runtime()
    _require_schema(rt)
    _use_case(rt, lambda session: accounts.set_agency_provider(
        session, slug, None if remove else issuer, None if remove else client_id))
    click.echo(f"agency {slug}: " + ("provider sign-in removed" if remove else
                                     f"staff may sign in through {issuer}"))


@cli.group()
def user() -> None:
    """Manage staff."""


@user.command("add")
@click.argument("username")
@click.option("--agency", "agency_id", required=True, help="The agency's slug.")
@click.option("--role", required=True,
              help="practitioner, coordinator, auditor, admin or evaluator (reports only, "
                   "never family content).")
@click.option("--password-stdin", is_flag=True, help="Read a password from standard input.")
@click.option("--display-name", help="The person's name as families are told it.")
@pass_state
def user_add(state: CliState, username: str, agency_id: str, role: str,
             password_stdin: bool, display_name: str | None) -> None:
    """Add a staff member."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
    rt = state.runtime()
    _require_schema(rt)
    _use_case(rt, lambda session: accounts.add_staff(session, username, agency_id, role,
                                                     password, rt.now(), display_name))
    click.echo(f"user {username} added to {agency_id} as {role}")


@user.command("deactivate")
@click.argument("username")
@click.option("--hand-over-to", "hand_over_to", metavar="USERNAME",
              help="A colleague in the same agency who becomes contact worker wherever "
                   "USERNAME was (without it, those families have none).")
@pass_state
def user_deactivate(state: CliState, username: str, hand_over_to: str | None) -> None:
    """Deactivate a staff member: their sessions and API tokens end at once."""
    rt = state.runtime()
    _require_schema(rt)
    done = _use_case(rt, lambda session: accounts.deactivate_staff(
        session, username, hand_over_to, rt.now()))
    handed = (f"{hand_over_to} is now contact worker" if hand_over_to
              else "no contact worker is named now")
    click.echo(f"user {username} deactivated: {done.sessions_ended} sessions ended, "
               f"{done.tokens_revoked} API tokens revoked; {handed} for "
               f"{done.contact_worker_changes} families")


@user.command("list")
@click.option("--agency", "agency_id", help="Only this agency's staff.")
@pass_state
def user_list(state: CliState, agency_id: str | None) -> None:
    """One line per staff member: username, agency, role, active."""
    rt = state.runtime()
    _require_schema(rt)
    with rt.sessions() as session:
        rows = [(s.username, s.agency_id, str(s.role), "active" if s.active else "inactive")
                for s in accounts.list_staff(session, agency_id)]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for row in rows:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False))
                   + "  " + row[3])


@user.command("link")
@click.argument("username")
@click.option("--subject", help="The user's `sub` at the agency's OpenID Connect provider.")
@click.option("--unlink", is_flag=True, help="Remove the link.")
@pass_state
def user_link(state: CliState, username: str, subject: str | None, unlink: bool) -> None:
    """Match a staff member to their account at the agency's provider."""
    if unlink == bool(subject):
        raise click.ClickException("give --subject, or --unlink")
    rt = state.runtime()
    _require_schema(rt)
    _use_case(rt, lambda session: accounts.link_provider_subject(
        session, username, None if unlink else subject))
    click.echo(f"user {username}: " + ("unlinked" if unlink else "linked to the provider"))


@cli.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("username")
@click.option("--days", type=click.IntRange(1, 366), default=None,
              help="Days until the token expires (default 90).")
@pass_state
def token_create(state: CliState, username: str, days: int | None) -> None:
    """Print one new API bearer token for USERNAME, and nothing else."""
    rt = state.runtime()
    _require_schema(rt)
    lifetime = timedelta(days=days) if days else rt.settings.staff_token_lifetime
    click.echo(_use_case(rt, lambda session: accounts.create_token(session, username, lifetime,
                                                                   rt.now())))


@token.command("revoke")
@click.argument("username")
@pass_state
def token_revoke(state: CliState, username: str) -> None:
    """Revoke every API token of USERNAME."""
    rt = state.runtime()
    _require_schema(rt)
    revoked = _use_case(rt, lambda session: accounts.revoke_tokens(session, username,
                                                                   rt.now()))
    click.echo(f"revoked {revoked} API tokens of {username}")


@cli.command("seed-demo")
@click.option("--population", is_flag=True,
              help="Also a year of a few hundred families (areas, needs, referrals, "
                   "attendance) for the reports page.")
@pass_state
def seed_demo(state: CliState, population: bool) -> None:
    """Load the demo agencies, staff and families (both scenarios)."""
    from coordination import demo

    rt = state.runtime()
    _require_schema(rt, keystore=True)
    with rt.sessions() as session:
        data = demo.seed(session, rt.vault, rt.now(),
                         population=demo.demo_population.FAMILIES if population else 0)
    _print_demo(data)


def _print_demo(data: Any, tokens: dict[str, str] | None = None) -> None:
    click.echo("Demo logins (username / password, role, agency):")
    for username, role, agency_id, password in data.logins:
        line = f"  {username:<10} / {password:<16} {role:<13} {agency_id}"
        if tokens:
            line += f"\n      API token: {tokens[username]}"
        click.echo(line)
    if data.families:
        click.echo("Demo families:")
        for scenario, family_id in data.families.items():
            click.echo(f"  {scenario:<8} {family_id}")
    if data.receipt:
        click.echo(
            f"Norway family's consent receipt: code {data.receipt['code']}, "
            f"PIN {data.receipt['pin']}"
        )
    if data.population:
        made = data.population
        click.echo(f"Population: {made.families} families over the last year "
                   f"({made.counted} agreed to be counted), {made.referrals} referrals, "
                   f"{made.attendance} attendance entries; evaluators see them under Reports.")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Server processes, 4 threads each (default 2). On SQLite the server "
                   "is one process of 8 threads, whose transactions take turns in order; "
                   "several are refused: use PostgreSQL for more.")
@pass_state
def serve(state: CliState, host: str, port: int, workers: int | None) -> None:
    """Serve the web UI and API with gunicorn."""
    rt = state.runtime()
    rt.settings.require_secret_key()
    threads = THREADS
    if rt.engine.dialect.name == "sqlite":
        if workers is not None and workers > 1:
            raise click.UsageError(
                f"--workers {workers}: on SQLite the server runs one process (SQLite has "
                "one write lock, and its requests take turns for it in order only within "
                "a process); leave out --workers, or use PostgreSQL for several")
        workers, threads = 1, SQLITE_THREADS
    _require_schema(rt, keystore=True)
    # Fail now, not in a worker, when a key is missing.
    rt.vault  # noqa: B018
    rt.audit_key  # noqa: B018
    # Seen by the other nodes at once; warned at once when the keyring lacks
    # the version every node agreed on (requests that need it answer 503).
    active = rt.heartbeat.beat(rt.now())
    keyring = rt.settings.keyring()
    if active not in keyring.keys:
        from coordination.crypto import MasterKeyMissing

        click.echo(f"onestory: warning: {MasterKeyMissing(active, keyring.where, True)}",
                   err=True)
    state.close()  # workers open their own connections after the fork
    _gunicorn(host, port, workers or WORKERS, rt.settings.max_body_bytes, threads)


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--population", is_flag=True,
              help="Seed a year of a few hundred families too (when empty; `make demo` "
                   "does), so the reports page has figures to show.")
@pass_state
def demo(state: CliState, port: int, population: bool) -> None:
    """init + seed-demo when empty + serve, on 127.0.0.1; prints the demo logins."""
    from coordination import demo as demo_data

    settings = replace(load_settings(), env="development")
    state.settings_override = settings
    rt = state.runtime()
    rt.settings.require_secret_key()
    rt.audit_key  # noqa: B018 - made now, so the workers share it
    migrate.upgrade(rt.engine)
    migrate.upgrade(rt.keystore.engine, keystore=True)
    # The seed runs before the server starts: no other writer to meet.
    with rt.sessions() as session:
        if demo_data.is_seeded(session):
            data = demo_data.DemoData(logins=[
                (u, r, a, demo_data.demo_password(u)) for u, a, r in demo_data.USERS
            ])
            click.echo("The demo data was loaded before; the receipt PIN was printed then.")
        else:
            if population:
                click.echo("Seeding a year of demo families for the reports page "
                           "(half a minute or so)...")
                sys.stdout.flush()
            data = demo_data.seed(
                session, rt.vault, rt.now(),
                population=demo_data.demo_population.FAMILIES if population else 0)

    def day_token(username: str) -> str:
        return _use_case(rt, lambda session: accounts.create_token(
            session, username, timedelta(days=1), rt.now()))

    tokens = {username: day_token(username) for username, *_ in data.logins}
    _print_demo(data, tokens)
    base = f"http://127.0.0.1:{port}"
    click.echo(f"\nServing OneStory on {base}  (Ctrl-C stops)")
    click.echo(f"  Open {base}/sign-in and sign in as coord1 / {demo_data.demo_password('coord1')}"
               " (health centre)")
    click.echo(f"  or ngocoord1 / {demo_data.demo_password('ngocoord1')} (the NGO): each lands "
               "on its agency's worklist.")
    click.echo(f"  Evaluators sign in as eval1 / {demo_data.demo_password('eval1')} and land on "
               "the reports page.")
    click.echo("  Every demo user signs in the same way: the password is <username>-demo.")
    click.echo(f"  Families sign in at {base}/family/ with the Norway receipt code and PIN above.")
    sys.stdout.flush()
    import os

    os.environ["ONESTORY_ENV"] = "development"
    state.close()  # workers open their own connections after the fork
    _gunicorn("127.0.0.1", port, 1, rt.settings.max_body_bytes, quiet_start=True)


@cli.command()
@click.argument("family_id")
@click.option("--reason", required=True, help="Why the family is erased (no personal data).")
@pass_state
def erase(state: CliState, family_id: str, reason: str) -> None:
    """Erase a family by destroying its key (crypto-shredding); re-run to
    finish an interrupted erasure."""
    from coordination import erasure

    rt = state.runtime()
    _require_schema(rt, keystore=True)
    # Each step of an erasure is idempotent, so running it again whole is safe.
    _use_case(rt, lambda session: erasure.erase_family(session, rt.keystore, family_id, reason,
                                                       "cli", rt.now()))
    click.echo(f"family {family_id} erased: its key is destroyed and its rows deleted")


@cli.group()
def search() -> None:
    """The search index."""


@search.command("reindex")
@click.option("--batch", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="Families indexed per transaction.")
@pass_state
def search_reindex(state: CliState, batch: int) -> None:
    """Index every family not yet in the search index under this index key:
    after upgrading to a version whose search changed, after restoring a
    backup, after changing the index key. Resumable: each batch is committed
    with its families marked done, so an interrupted run is finished by
    running it again; a run with nothing left changes nothing."""
    from coordination.casework import search_index

    rt = state.runtime()
    _require_schema(rt, keystore=True)
    with rt.sessions() as session:
        total = search_index.left_to_index(session, rt.vault)
        click.echo(f"search reindex: {total} families to index", err=True)
        done = 0
        while True:
            try:
                ids = retry_on_conflict(session, lambda: search_index.reindex_batch(
                    session, rt.vault, rt.now(), batch))
            except VaultError as exc:
                raise click.ClickException(
                    f"search reindex stopped after {done} of {total} families: {exc}; "
                    "what was indexed is kept, run it again to go on") from None
            if not ids:
                break
            done += len(ids)
            click.echo(f"search reindex: {done} of {total} families indexed", err=True)
    click.echo(f"search index is current: {done} families indexed now")


@cli.group()
def keys() -> None:
    """Manage the master keyring and the data keys it wraps."""


@keys.command("init")
@click.option("--keyring-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--index-key-file", type=click.Path(dir_okay=False, path_type=Path),
              required=True)
@click.option("--audit-key-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also make the audit signing key (Ed25519).")
def keys_init(keyring_file: Path, index_key_file: Path, audit_key_file: Path | None) -> None:
    """Make a new master keyring, blind-index key and audit signing key (mode 0600)."""
    import base64
    import json
    import secrets

    from coordination.crypto import new_keyring_document, write_secret_file

    paths = [p for p in (keyring_file, index_key_file, audit_key_file) if p is not None]
    for path in paths:
        if path.exists():
            raise click.ClickException(f"{path} exists already; refusing to overwrite a key")
    write_secret_file(keyring_file, json.dumps(new_keyring_document(), indent=2) + "\n")
    write_secret_file(index_key_file, base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    if audit_key_file is not None:
        write_secret_file(audit_key_file,
                          base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    click.echo(f"wrote {', '.join(map(str, paths))}; point ONESTORY_KEYRING_FILE, "
               "ONESTORY_INDEX_KEY_FILE (and ONESTORY_AUDIT_SIGNING_KEY_FILE) at them and "
               "back them up apart from the databases")


RULES = ("a version is activated only when every node seen in the last 5 minutes holds "
         "it, and retired only when no data key and no such node depends on it")


def _ago(rt: Runtime, then: datetime) -> str:
    return f"{max(0, int((rt.now() - then).total_seconds()))} s ago"


def _other_nodes(rt: Runtime) -> list[NodeReport]:
    """Nodes seen in the last minutes, but this one: its servers read the
    same keyring file as this command (same host and instance folder)."""
    from coordination.nodes import LIVE, node_id

    me = node_id(rt.settings.instance)
    return [n for n in rt.keystore.nodes(since=rt.now() - LIVE) if n.node_id != me]


def _keys_tools(state: CliState) -> tuple[Runtime, Keyring]:
    rt = state.runtime()
    _require_schema(rt, keystore=True)
    return rt, rt.settings.keyring()


def _add_version(rt: Runtime, keyring: Keyring) -> int:
    """A new version in the keyring file, numbered above any the key store
    or a node knows of; not active."""
    known = set(rt.keystore.count_under())
    known |= {v for node in rt.keystore.nodes() for v in node.versions}
    with suppress(NoActiveVersion):
        known.add(rt.keystore.active_version())
    version = keyring.add_version(above=max(known, default=0))
    keyring.save()
    return version


def _refuse_activation(rt: Runtime, keyring: Keyring, version: int) -> str | None:
    """Why `version` may not become active now, or None."""
    if version not in keyring.keys:
        return (f"this node's keyring ({keyring.where}) has no master key version {version}: "
                "run `onestory keys add` first, or copy the keyring file that has it here")
    for node in _other_nodes(rt):
        if version not in node.versions:
            return (f"node {node.node_id} (seen {_ago(rt, node.seen_at)}) does not hold master "
                    f"key version {version}: copy the keyring file to every node first ({RULES})")
    return None


def _activate_and_rewrap(rt: Runtime, keyring: Keyring, version: int, batch: int) -> str:
    from coordination.crypto import rewrap_all

    rt.keystore.set_active(version, rt.now())
    if keyring.path is not None:
        keyring.activate(version)
        keyring.save()
    try:
        report = rewrap_all(keyring, rt.keystore, rt.now(), batch)
    except Exception as exc:
        raise click.ClickException(
            f"master key version {version} is active on every node, but re-wrapping stopped "
            f"({type(exc).__name__}); run `onestory keys rewrap` to finish") from None
    return (f"master key version {version} is active on every node; re-wrapped "
            f"{report.rewrapped} data keys in {report.seconds:.1f} s "
            f"({report.per_second:.0f} per second)")


@keys.command("add")
@pass_state
def keys_add(state: CliState) -> None:
    """Add a new master key version to the keyring file, not active yet."""
    rt, keyring = _keys_tools(state)
    version = _add_version(rt, keyring)
    click.echo(f"master key version {version} added to {keyring.where}, not active: copy "
               "this file to every node (mode 0600), check with `onestory keys status` that "
               f"every node holds it, then run `onestory keys activate {version}`")


@keys.command("activate")
@click.argument("version", type=click.IntRange(1))
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@pass_state
def keys_activate(state: CliState, version: int, batch: int) -> None:
    """Make VERSION the one every node wraps new data keys under, and re-wrap
    every data key under it."""
    rt, keyring = _keys_tools(state)
    refusal = _refuse_activation(rt, keyring, version)
    if refusal:
        raise click.ClickException(refusal)
    click.echo(_activate_and_rewrap(rt, keyring, version, batch))


@keys.command("rotate")
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@pass_state
def keys_rotate(state: CliState, batch: int) -> None:
    """On a single node: `keys add`, `keys activate` and the re-wrap at once."""
    rt, keyring = _keys_tools(state)
    version = _add_version(rt, keyring)
    refusal = _refuse_activation(rt, keyring, version)
    if refusal:
        raise click.ClickException(
            f"master key version {version} was added to {keyring.where} but not activated: "
            f"{refusal}; then run `onestory keys activate {version}`")
    click.echo(_activate_and_rewrap(rt, keyring, version, batch))


@keys.command("rewrap")
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@pass_state
def keys_rewrap(state: CliState, batch: int) -> None:
    """Re-wrap data keys still under another master key than the active one
    (finishes an activation)."""
    from coordination.crypto import rewrap_all

    rt, keyring = _keys_tools(state)
    report = rewrap_all(keyring, rt.keystore, rt.now(), batch)
    click.echo(f"re-wrapped {report.rewrapped} data keys under master key version "
               f"{report.version} in {report.seconds:.1f} s")


@keys.command("retire")
@click.argument("version", type=int)
@pass_state
def keys_retire(state: CliState, version: int) -> None:
    """Remove an old master key version from this node's keyring file once
    no data key and no live node depends on it."""
    from coordination.nodes import LIVE

    rt, keyring = _keys_tools(state)
    active = rt.keystore.active_version(propose=keyring.active, now=rt.now())
    if version == active:
        raise click.ClickException(f"version {version} is the active master key version: "
                                   "activate another and re-wrap first")
    if version not in keyring.keys:
        raise click.ClickException(f"there is no master key version {version} in "
                                   f"{keyring.where}")
    still = rt.keystore.count_under().get(version, 0)
    if still:
        raise click.ClickException(f"{still} data keys are still wrapped under version "
                                   f"{version}: run `onestory keys rewrap` first ({RULES})")
    for node in _other_nodes(rt):
        if active not in node.versions:
            raise click.ClickException(
                f"node {node.node_id} (seen {_ago(rt, node.seen_at)}) lacks the active "
                f"version {active} and may still need version {version}: copy the keyring "
                f"file to it first ({RULES})")
        if node.active_version == version:
            raise click.ClickException(
                f"node {node.node_id} last reported version {version} as active "
                f"({_ago(rt, node.seen_at)}): wait for its next heartbeat, at most a minute, "
                f"or until it is {int(LIVE.total_seconds() // 60)} minutes silent ({RULES})")
    keyring.retire(version, active)
    keyring.save()
    click.echo(f"master key version {version} retired from {keyring.where}; copy this file "
               "to every node so that no copy of the old key stays behind")


@keys.command("status")
@pass_state
def keys_status(state: CliState) -> None:
    """The active version every node agreed on, how many data keys each
    version wraps, and the nodes seen in the last minutes."""
    rt, keyring = _keys_tools(state)
    try:
        active: int | None = rt.keystore.active_version()
    except NoActiveVersion:
        active = None
    click.echo("active master key version (agreed by every node through the key store): "
               + (str(active) if active is not None else "none yet"))
    counts = rt.keystore.count_under()
    versions = set(keyring.keys) | set(counts) | ({active} if active is not None else set())
    for version in sorted(versions):
        mark = " (active)" if version == active else ""
        held = "" if version in keyring.keys else " MISSING FROM THIS NODE'S KEYRING"
        click.echo(f"version {version}{mark}: {counts.get(version, 0)} data keys{held}")
    from coordination.nodes import LIVE

    seen = rt.keystore.nodes(since=rt.now() - LIVE)
    click.echo(f"nodes seen in the last {int(LIVE.total_seconds() // 60)} minutes: "
               f"{len(seen)}")
    for node in seen:
        holds = ", ".join(str(v) for v in sorted(node.versions)) or "nothing"
        lacking = "" if active is None or active in node.versions else " LACKS THE ACTIVE VERSION"
        click.echo(f"  {node.node_id}: seen {_ago(rt, node.seen_at)}, holds {holds}; read "
                   f"{node.active_version} as active{lacking}")


@cli.group("audit")
def audit_group() -> None:
    """Check and anchor the tamper-evident audit log."""


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint kept elsewhere (repeatable); catches a cut-off tail.")
@pass_state
def audit_verify(state: CliState, checkpoint_files: tuple[Path, ...]) -> None:
    """Exit 0 when the log is intact; otherwise exit 1 naming the first bad entry."""
    import json

    import audit.services as audit_log

    rt = state.runtime()
    _require_schema(rt)
    checkpoints = []
    for path in checkpoint_files:
        try:
            checkpoint = json.loads(path.read_text())
        except (ValueError, OSError):
            checkpoint = None
        shape = {"seq": int, "hash": str, "at": str, "signature": str}
        if not isinstance(checkpoint, dict) or not all(
                type(checkpoint.get(key)) is kind for key, kind in shape.items()):
            raise click.ClickException(f"{path} is not a checkpoint made by "
                                       "`onestory audit checkpoint`")
        checkpoints.append(checkpoint)
    result = audit_log.verify(rt.engine, rt.audit_key.public_key(), checkpoints)
    if not result.ok:
        raise click.ClickException(
            f"the audit log is NOT intact: first bad entry {result.first_bad} "
            f"({result.problem}); {result.entries} entries verified before it")
    click.echo(f"the audit log is intact: {result.entries} entries, head {result.head}")


@audit_group.command("checkpoint")
@pass_state
def audit_checkpoint(state: CliState) -> None:
    """Sign the chain's head, store it, and print it (JSON) for the auditor to keep."""
    import json

    import audit.services as audit_log
    from audit.model import Action
    from audit.services import Event

    rt = state.runtime()
    _require_schema(rt)
    def checkpoint(session: Session) -> dict[str, Any]:
        signed = audit_log.make_checkpoint(session, rt.audit_key, rt.now())
        audit_log.record(session, Event(action=Action.AUDIT_CHECKPOINT, actor="cli",
                                        detail={"seq": signed["seq"]}), rt.now())
        session.commit()
        return signed

    click.echo(json.dumps(_use_case(rt, checkpoint), indent=2))


def _gunicorn(host: str, port: int, workers: int, max_body_bytes: int,
              threads: int = THREADS, *, quiet_start: bool = False) -> None:
    from coordination.serving import serve

    serve(host, port, workers, max_body_bytes, quiet_start=quiet_start, threads=threads)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr and a non-zero exit on any failure."""
    state = CliState()
    try:
        cli.main(args=argv, prog_name="onestory", standalone_mode=False, obj=state)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        click.echo("onestory: aborted", err=True)
        return 1
    except click.exceptions.NoArgsIsHelpError as exc:
        path = exc.ctx.command_path if exc.ctx else "onestory"
        click.echo(f"onestory: missing command; run '{path} --help'", err=True)
        return 2
    except click.UsageError as exc:
        click.echo(f"onestory: {exc.format_message()}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"onestory: {exc.format_message()}", err=True)
        return 1
    except (OneStoryError, ConfigError, KeyringError, VaultError) as exc:
        click.echo(f"onestory: {exc}", err=True)
        return 1
    except SQLAlchemyError as exc:
        if is_write_conflict(exc):
            click.echo("onestory: the database stayed busy with other writers; "
                       "nothing was changed, try again", err=True)
            return 1
        click.echo(f"onestory: database error ({type(exc).__name__}); "
                   "check ONESTORY_DATABASE_URL and run `onestory init`", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the contract: never a traceback
        click.echo(f"onestory: unexpected {type(exc).__name__}; nothing was changed", err=True)
        return 1
    finally:
        state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
