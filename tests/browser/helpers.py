"""What browser tests call: accessibility checks, screenshots, console errors,
signing in at the test OpenID Connect provider, and the machinery behind the
fixtures in conftest.py (a WSGI server in a thread, the provider process).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, got_request_exception
from playwright.sync_api import ConsoleMessage, Page, expect
from werkzeug.serving import BaseWSGIServer, make_server

HERE = Path(__file__).parent
NODE_DIR = HERE / "node"
NODE_MODULES = NODE_DIR / "node_modules"
AXE_SCRIPT = NODE_MODULES / "axe-core" / "axe.min.js"
PROVIDER_SCRIPT = NODE_DIR / "oidc_provider.mjs"
PROVIDER_START_TIMEOUT = 20.0


def artefacts_dir() -> Path:
    """Where screenshots go: $ONESTORY_ARTEFACTS, else tests/browser/artefacts."""
    path = Path(os.environ.get("ONESTORY_ARTEFACTS") or HERE / "artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of what the page shows now, named `name`.png in the artefacts folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "page"
    path = artefacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- accessibility --------------------------------------------------------------------

BLOCKING_IMPACTS = ("serious", "critical")


def axe_check(page: Page, *, ignore: Iterable[str] = (),
              impacts: Iterable[str] = BLOCKING_IMPACTS,
              options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run axe-core over the page as it is now; fail on violations of `impacts`.

    `ignore` names axe rule ids to leave out (say why where you call it). Returns
    every violation axe found, the minor and moderate ones included.
    axe is evaluated through the DevTools protocol, so the product's
    Content-Security-Policy (script-src 'self') does not block it and needs no
    exception for tests.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    run_options = {"resultTypes": ["violations"], **(options or {})}
    results = page.evaluate("options => window.axe.run(document, options)", run_options)
    violations: list[dict[str, Any]] = results["violations"]
    skipped = set(ignore)
    blocking = [v for v in violations
                if v["id"] not in skipped and v.get("impact") in set(impacts)]
    assert not blocking, describe_violations(page.url, blocking)
    return violations


def describe_violations(url: str, violations: list[dict[str, Any]]) -> str:
    """One paragraph per rule: what it asks, then where and how each element fails it."""
    lines = [f"axe-core found {len(violations)} accessibility violation(s) on {url}:"]
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']}  <{v['helpUrl']}>")
        for node in v["nodes"][:5]:
            target = " ".join(t if isinstance(t, str) else json.dumps(t) for t in node["target"])
            html = " ".join(node["html"].split())
            html = html if len(html) <= 120 else html[:117] + "..."
            checks = [line.strip() for line in (node.get("failureSummary") or "").splitlines()]
            lines.append(f"    at `{target}`: {html}")
            if checks:
                lines.append(f"      {checks[0]} {'; '.join(c for c in checks[1:] if c)}")
        if len(v["nodes"]) > 5:
            lines.append(f"    ... and {len(v['nodes']) - 5} more element(s)")
    return "\n".join(lines)


# --- console errors -------------------------------------------------------------------

_console: dict[Page, list[str]] = {}


def watch_console(page: Page) -> None:
    """Collect the page's console errors (CSP refusals and failed loads among them) and
    uncaught exceptions. The browser's own /favicon.ico request is not the page's doing."""
    errors = _console.setdefault(page, [])

    def on_console(msg: ConsoleMessage) -> None:
        where = msg.location.get("url", "")
        if msg.type == "error" and not where.endswith("/favicon.ico"):
            errors.append(f"console.error: {msg.text}" + (f" ({where})" if where else ""))

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))


def console_errors(page: Page) -> list[str]:
    """The console errors and uncaught exceptions seen so far on a `page` fixture's page."""
    return list(_console.get(page, []))


def forget_console(page: Page) -> None:
    _console.pop(page, None)


# --- signing in at the test provider -------------------------------------------------

def provider_sign_in(page: Page, login: str, password: str = "any") -> None:  # noqa: S107
    """On the provider's development login page: sign in as `login`, then confirm the
    consent screen if the provider shows one. Any password is accepted.

    Call it once the browser is at the provider (after following the product's
    "sign in with ..." link); it returns once the browser has left the provider.
    """
    issuer_origin = re.match(r"https?://[^/]+", page.url)
    assert issuer_origin, page.url
    origin = issuer_origin[0]
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign-in").click()
    page.wait_for_load_state()
    if page.url.startswith(origin + "/interaction/"):
        page.get_by_role("button", name="Continue").click()
    page.wait_for_url(lambda url: not url.startswith(origin), wait_until="commit")


# --- a Flask app served for real ------------------------------------------------------

@dataclass
class LiveServer:
    """A Flask app served by werkzeug on 127.0.0.1 in a background thread.

    `errors` collects the tracebacks of exceptions the app did not handle (the
    browser sees only a 500 page; the `live_server` fixture fails the test on them).
    """

    app: Flask
    port: int = 0
    errors: list[str] = field(default_factory=list)
    server: BaseWSGIServer = field(init=False)
    thread: threading.Thread = field(init=False)

    def _record(self, _sender: Flask, exception: BaseException, **_extra: Any) -> None:
        self.errors.append("".join(traceback.format_exception(exception)))

    def start(self) -> str:
        got_request_exception.connect(self._record, self.app)
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       name=f"live-server-{self.port}", daemon=True)
        self.thread.start()
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        got_request_exception.disconnect(self._record, self.app)


# --- the OpenID Connect provider ------------------------------------------------------

class ProviderFailed(Exception):
    pass


@dataclass
class OidcProvider:
    """A running tests/browser/node/oidc_provider.mjs with one client."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    process: subprocess.Popen[str]
    output: list[str]
    reader: threading.Thread | None = None

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.reader is not None:
            self.reader.join(timeout=10)  # it reads to the end of the output first
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_provider(node: str, redirect_uris: list[str], *, client_id: str = "onestory",
                   client_secret: str | None = None, auth_method: str | None = None,
                   host: str = "127.0.0.1", port: int = 0,
                   misbehave: str | None = None) -> OidcProvider:
    """Start the provider and wait for its READY line; ProviderFailed with its output if not.
    `misbehave` (iss, aud, nonce, expired, signature) makes it hand out that wrong ID token."""
    cmd = [node, str(PROVIDER_SCRIPT), str(port), "--host", host, "--client-id", client_id]
    if misbehave:
        cmd += ["--misbehave", misbehave]
    for uri in redirect_uris:
        cmd += ["--redirect-uri", uri]
    if client_secret:
        cmd += ["--client-secret", client_secret]
    if auth_method:
        cmd += ["--auth-method", auth_method]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "NODE_"))}
    proc = subprocess.Popen(cmd, cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    output: list[str] = []
    ready = threading.Event()
    issuer: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # read to the end, so the pipe never fills
            output.append(line)
            if line.startswith("READY ") and not ready.is_set():
                issuer.append(line.split()[1])
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, name="oidc-provider-output", daemon=True)
    reader.start()
    provider = OidcProvider("", client_id, client_secret, list(redirect_uris), proc, output,
                            reader)
    started = time.monotonic()
    ready.wait(timeout=PROVIDER_START_TIMEOUT)
    if not issuer:
        provider.stop()
        raise ProviderFailed(f"the OpenID Connect provider did not start "
                             f"({time.monotonic() - started:.1f} s, exit code {proc.returncode}):"
                             f"\n{provider.log()}")
    provider.issuer = issuer[0]
    return provider


def staff_sign_in(page: Page, base: str, username: str) -> None:
    """Sign a demo staff member in with the password tests.web set, and wait
    until the page says so."""
    from tests.web import password_of

    page.goto(f"{base}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password_of(username))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
