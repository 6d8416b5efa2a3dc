"""Packaging: a wheel of the project holds every template, static file,
message catalogue and migration template the application reads, and an
editable install (what `make demo` does) makes setuptools say nothing:
`make demo` used to print hundreds of lines of its warnings before the
logins. (pip shows the build's output only with `-v`, or, from pip 25 on,
its warnings even with `--quiet`; the test asks with `-v`.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["coordination", "consent", "audit", "migrations"]
# What the application reads besides Python modules.
DATA = ["coordination/templates/**/*.html", "coordination/static/*",
        "coordination/translations/*/LC_MESSAGES/*", "migrations/**/script.py.mako"]


def test_the_wheel_holds_the_data_and_installs_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in SOURCES:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
         str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    said = built.stdout + built.stderr
    for warning in ("absent from the `packages` configuration", "BuildBackendWarning",
                    "SetuptoolsDeprecationWarning"):
        assert warning not in said, said
    # --ignore-installed: into the prefix only, leaving the running
    # environment's own install of onestory alone.
    editable = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-v",
         "--prefix", str(tmp_path / "prefix"), "-e", str(source)],
        capture_output=True, text=True, timeout=600)
    assert editable.returncode == 0, editable.stderr
    said = editable.stdout + editable.stderr
    for warning in ("absent from the `packages` configuration", "Editable installation.",
                    "BuildBackendWarning", "SetuptoolsDeprecationWarning"):
        assert warning not in said, said
    [wheel] = (tmp_path / "dist").glob("onestory-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    wanted = {str(path.relative_to(source)) for pattern in DATA for path in source.glob(pattern)}
    assert len(wanted) > 30
    assert wanted <= held, sorted(wanted - held)
