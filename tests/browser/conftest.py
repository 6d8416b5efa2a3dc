"""Real-browser tests: Debian's Chromium driven by Playwright, the app served by
werkzeug on a loopback port, a real OpenID Connect provider (node's
oidc-provider) and axe-core in the page.

Needs /usr/bin/chromium (`apt-get install -y chromium`) and the node tools
(`npm ci --prefix tests/browser/node`). Without them these tests skip locally
with a message saying so; in CI (CI=true) they fail instead. Browser tests run
on SQLite only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.browser.helpers import (
    AXE_SCRIPT,
    NODE_MODULES,
    LiveServer,
    OidcProvider,
    ProviderFailed,
    artefacts_dir,
    forget_console,
    start_provider,
    watch_console,
)
from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own background traffic would go nowhere on a closed network: keep it quiet.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 10_000


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def node_path() -> str:
    """The `node` that runs the OpenID Connect provider, with the node tools installed."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed (apt-get install -y nodejs npm); "
                     "the browser tests need it for their OpenID Connect provider")
    missing = [p for p in (NODE_MODULES / "oidc-provider", AXE_SCRIPT) if not p.exists()]
    if missing:
        _unavailable(f"the browser tests' node tools are missing ({missing[0]}): "
                     "run `npm ci --prefix tests/browser/node`")
    return node


@pytest.fixture(scope="session")
def chromium_path(request: pytest.FixtureRequest) -> Path:
    """Debian's Chromium; skips (fails in CI) without it or without the node tools
    (axe-core comes from there)."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is not installed: `apt-get install -y chromium` "
                     "(and `npm ci --prefix tests/browser/node`) to run the browser tests")
    request.getfixturevalue("node_path")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Browser]:
    """One headless Chromium for the whole run; each test gets a fresh context."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path),
                                              headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (cookies, storage) for one test."""
    ctx = browser.new_context(locale="en-GB", timezone_id="Europe/Helsinki",
                              viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh context; a screenshot is kept when the test fails."""
    tab = context.new_page()
    watch_console(tab)
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not tab.is_closed():
        name = "FAILED-" + request.node.nodeid.replace("/", "_").replace("::", "-")
        try:
            tab.screenshot(path=str(artefacts_dir() / f"{name[:150]}.png"), full_page=True)
        except Exception as exc:  # a screenshot must not hide the failure itself
            print(f"no failure screenshot: {exc}")
    forget_console(tab)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """Keeps each test's call report on the item, for the `page` fixture's teardown."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture(params=["sqlite"])
def db_url(db_url: str) -> str:
    """Browser tests run on SQLite only: the shared `db_url`, given its one backend."""
    return db_url


@pytest.fixture
def live_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """serve(app=None, port=0) -> base URL: the app (the `app` fixture if none is
    given) served on 127.0.0.1 by werkzeug in a thread, stopped at teardown."""
    servers: list[LiveServer] = []

    def serve(app: Flask | None = None, port: int = 0) -> str:
        server = LiveServer(app if app is not None else request.getfixturevalue("app"), port)
        url = server.start()
        servers.append(server)
        return url

    yield serve
    for server in reversed(servers):
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        pytest.fail("the served app raised (the browser saw a 500):\n" + "\n".join(errors),
                    pytrace=False)


@pytest.fixture
def oidc_provider(node_path: str) -> Iterator[Callable[..., OidcProvider]]:
    """start(redirect_uris, *, client_id="onestory", client_secret=None,
    auth_method=None, host="127.0.0.1", misbehave=None) -> OidcProvider: a real
    OpenID Connect provider on a free loopback port, with one client; stopped
    at teardown. `misbehave` makes it hand out a wrong ID token (see
    node/oidc_provider.mjs)."""
    started: list[OidcProvider] = []

    def start(redirect_uris: list[str], *, client_id: str = "onestory",
              client_secret: str | None = None, auth_method: str | None = None,
              host: str = "127.0.0.1", misbehave: str | None = None) -> OidcProvider:
        try:
            provider = start_provider(node_path, redirect_uris, client_id=client_id,
                                      client_secret=client_secret, auth_method=auth_method,
                                      host=host, misbehave=misbehave)
        except ProviderFailed as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


@pytest.fixture
def people(browser: Browser) -> Iterator[Callable[..., Page]]:
    """A new browser profile per person (no shared cookies)."""
    contexts: list[BrowserContext] = []

    def person(**options: object) -> Page:
        ctx = browser.new_context(locale="en-GB", **options)  # type: ignore[arg-type]
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield person
    for ctx in contexts:
        ctx.close()
