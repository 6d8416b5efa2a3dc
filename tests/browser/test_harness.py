"""The browser-test tools themselves: the product served on SQLite, axe-core under
the product's Content-Security-Policy, screenshots, console errors, and server
exceptions made visible.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from flask import Flask, Response
from playwright.sync_api import Page, expect

from tests.browser.helpers import LiveServer, axe_check, console_errors, screenshot

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"

GOOD = """<!doctype html><html lang="ar" dir="rtl"><head><meta charset="utf-8">
<title>قصة واحدة</title></head><body><main><h1>قصة واحدة — OneStory</h1>
<p>Ett gemensamt samtycke, une seule histoire, ein Formular.</p>
<form><label for="q">Search</label><input id="q" name="q"><button>Go</button></form>
</main></body></html>"""

BAD = """<!doctype html><html><head><meta charset="utf-8"><title>Bad</title></head>
<body><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<input name="unlabelled"><script>document.title = "inline ran"</script></body></html>"""


def pages_app() -> Flask:
    app = Flask("pages")

    def html(body: str) -> Response:
        return Response(body, headers={"Content-Security-Policy": CSP})

    app.add_url_rule("/good", "good", lambda: html(GOOD))
    app.add_url_rule("/bad", "bad", lambda: html(BAD))

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the app broke")

    return app


def test_the_product_is_served_on_sqlite(page: Page, live_server: Callable[..., str],
                                         db_url: str, request: pytest.FixtureRequest) -> None:
    assert db_url.startswith("sqlite:")
    assert request.node.callspec.params["db_url"] == "sqlite"
    base = live_server()
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    page.goto(base + "/")
    expect(page).to_have_title(re.compile("OneStory"))
    axe_check(page)
    assert console_errors(page) == []


def test_axe_runs_under_a_strict_csp_and_passes_a_good_page(
        page: Page, live_server: Callable[..., str]) -> None:
    base = live_server(pages_app())
    page.goto(f"{base}/good")
    assert axe_check(page) == []
    png = screenshot(page, "harness-good-page-rtl")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_axe_names_serious_violations_and_the_csp_blocks_inline_script(
        page: Page, live_server: Callable[..., str]) -> None:
    base = live_server(pages_app())
    page.goto(f"{base}/bad")
    with pytest.raises(AssertionError) as failure:
        axe_check(page)
    message = str(failure.value)
    assert "image-alt (critical)" in message
    assert "label (critical)" in message
    assert 'at `input`: <input name="unlabelled">' in message
    assert "html-has-lang (serious)" in message
    # Leaving rules out, with a reason where it is done, lets the rest be checked.
    found = axe_check(page, ignore=["image-alt", "label", "html-has-lang"])
    assert {v["id"] for v in found} >= {"image-alt", "label", "landmark-one-main"}

    expect(page).to_have_title("Bad")  # the inline script never ran
    assert any("Content Security Policy" in e for e in console_errors(page)), \
        console_errors(page)


def test_an_exception_in_the_served_app_is_kept() -> None:
    server = LiveServer(pages_app())
    base = server.start()
    try:
        assert requests.get(f"{base}/boom", timeout=10).status_code == 500
    finally:
        server.stop()
    assert len(server.errors) == 1
    assert "RuntimeError: the app broke" in server.errors[0]
