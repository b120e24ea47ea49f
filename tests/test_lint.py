"""Lint and format: ruff, configured in pyproject.toml ([tool.ruff]), over the whole tree.

`make test` runs pytest, so a lint finding or an unformatted file fails `make test`. The last two
tests show each check failing: a file with an unused import and another with a badly laid out
call, in a directory that carries this repository's ruff settings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


def ruff(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_ruff_lint_passes_on_the_tree():
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_passes_on_the_tree():
    result = ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, "run `.venv/bin/ruff format .`\n" + result.stdout + result.stderr


def _tree_with(tmp_path: Path, name: str, source: str) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / name).write_text(source, encoding="utf-8")
    return root


def test_ruff_lint_fails_on_an_unused_import(tmp_path):
    root = _tree_with(tmp_path, "bad_lint.py", '"""A module."""\n\nimport os\n\nVALUE = 1\n')
    result = ruff("check", "--no-cache", "--output-format", "concise", ".", cwd=root)
    assert result.returncode == 1
    assert "bad_lint.py:3:8: F401" in result.stdout


def test_ruff_format_fails_on_a_badly_laid_out_file(tmp_path):
    root = _tree_with(tmp_path, "bad_format.py", "VALUE = dict( a = 1,b=2 )\n")
    result = ruff("format", "--no-cache", "--check", ".", cwd=root)
    assert result.returncode == 1
    assert "bad_format.py" in result.stdout and "1 file would be reformatted" in result.stdout
