"""Running `onestory` in-process from tests, and checking what it printed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from coordination import cli


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_ok(result: Result) -> None:
    assert result.code == 0, result
    assert "Traceback" not in result.out + result.err


def assert_one_line_failure(result: Result) -> str:
    assert result.code != 0, result
    message = result.err.strip()
    assert message, result
    assert "\n" not in message, f"more than one line on stderr: {result.err!r}"
    assert "Traceback" not in result.out + result.err
    return message
