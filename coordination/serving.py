"""`onestory serve` and `onestory demo`: the application under gunicorn.

Two things gunicorn would otherwise answer on its own terms:

- A request gunicorn refuses before the application sees it (a request line
  or header over its limits, too many headers, text that is not HTTP) gets
  the contract's problem+json answer instead of gunicorn's HTML page, with
  nothing of the refused text echoed back.
- A request whose body may be left unread (over the body limit, or of
  unknown length) is answered with `Connection: close`: gunicorn would
  otherwise promise keep-alive, fail to drain the body, and hang up on the
  client's next request.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from coordination.api.problems import PROBLEM, problem_body

# gunicorn's limits, stated rather than left to its defaults (README "Production").
LIMIT_REQUEST_LINE = 4094  # bytes of "GET /path?query HTTP/1.1"
LIMIT_REQUEST_FIELDS = 100  # headers
LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes of one header


def refusal(exc: BaseException) -> tuple[int, str, str, str, str] | None:
    """(status, reason phrase, slug, title, detail) for a request gunicorn
    refused as malformed; None for its own failures (left to gunicorn)."""
    if isinstance(exc, http_errors.InvalidResponseHeader | http_errors.InvalidResponseHeaderName
                  | http_errors.ConfigurationProblem):
        return None  # the application's or the configuration's fault: a 500
    if isinstance(exc, http_errors.LimitRequestLine):
        return (414, "URI Too Long", "uri-too-long", "Request line too long",
                f"the request line is over {LIMIT_REQUEST_LINE} bytes")
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return (431, "Request Header Fields Too Large", "request-header-fields-too-large",
                "Request headers too large",
                f"at most {LIMIT_REQUEST_FIELDS} headers of at most "
                f"{LIMIT_REQUEST_FIELD_SIZE} bytes each")
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return (501, "Not Implemented", "not-implemented", "Not implemented",
                "this transfer coding is not supported")
    if isinstance(exc, http_errors.ExpectationFailed):
        return (417, "Expectation Failed", "expectation-failed", "Expectation failed",
                "only `Expect: 100-continue` is supported")
    if isinstance(exc, http_errors.ParseException):
        return 400, "Bad Request", "bad-request", "Bad request", "the request is not valid HTTP"
    return None


def refusal_bytes(status: int, reason: str, slug: str, title: str, detail: str) -> bytes:
    body = json.dumps(problem_body(status, slug, title, detail)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            "Connection: close\r\n"
            f"Content-Type: {PROBLEM}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Cache-Control: no-store\r\n\r\n")
    return head.encode("latin-1") + body


class Worker(ThreadWorker):
    """gunicorn's threaded worker, answering its refusals as problem+json."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any,
                     exc: BaseException) -> None:
        answer = refusal(exc)
        if answer is None:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("refused a request that is not valid HTTP: %s (%d)",
                         type(exc).__name__, answer[0])
        try:
            client.setblocking(True)
            client.sendall(refusal_bytes(*answer))
        except OSError:
            self.log.debug("could not send the refusal")


def close_when_body_may_stay_unread(max_body_bytes: int) -> Any:
    """gunicorn's `pre_request` hook: mark a request to close its connection
    when its body may be left unread by the application."""

    def pre_request(worker: Any, req: Any) -> None:
        for name, value in req.headers:
            if name == "TRANSFER-ENCODING" or (
                    name == "CONTENT-LENGTH" and value.isdigit()
                    and int(value) > max_body_bytes):
                req.force_close()
                return

    return pre_request


def serve(host: str, port: int, workers: int, max_body_bytes: int, *,
          quiet_start: bool = False, application: Callable[[], Any] | None = None,
          threads: int = 4) -> None:
    """Run gunicorn with the OneStory application until it is stopped.
    `quiet_start`: no start-up lines (the demo ends its output with what to
    open); warnings, errors and the access log still come. `application`:
    another WSGI application's factory, called in each worker, served the same
    way (bench/floor_app.py, the load benchmark's floor). On SQLite the
    workers' transactions take turns (`coordination.db.serve_in_turns`)."""
    from coordination.app import create_app
    from coordination.db import serve_in_turns

    serve_in_turns()
    make_app = application or create_app

    class OneStoryServer(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", f"{__name__}.Worker")
            self.cfg.set("limit_request_line", LIMIT_REQUEST_LINE)
            self.cfg.set("limit_request_fields", LIMIT_REQUEST_FIELDS)
            self.cfg.set("limit_request_field_size", LIMIT_REQUEST_FIELD_SIZE)
            self.cfg.set("pre_request", close_when_body_may_stay_unread(max_body_bytes))
            self.cfg.set("accesslog", "-")
            # Query strings can carry names (search); log the path only.
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss')
            if quiet_start:
                self.cfg.set("loglevel", "warning")

        def load(self) -> Any:
            return make_app()

    OneStoryServer().run()
