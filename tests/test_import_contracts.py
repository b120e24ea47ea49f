"""The import contracts in pyproject.toml ([tool.importlinter]), run by import-linter's `lint-imports`.

The contracts hold on this tree; each one fails when a single violating import is written into a copy
of the tree; and every import a contract lets through as deferred really sits inside a function (or
under ``if TYPE_CHECKING``), which import-linter itself cannot tell. What the cockpit imports at
start-up, measured at run time, stays with the ``sys.modules`` tests in test_cli.py and
test_dashboard.py.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.api import read_configuration

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG = read_configuration(str(REPO / "pyproject.toml"))
CONTRACTS = {contract["name"]: contract for contract in CONFIG["contracts_options"]}
ROOTS = CONFIG["session_options"]["root_packages"]


def lint_imports(root: Path) -> tuple[int, dict[str, str], str]:
    """Run `lint-imports` on the tree at ``root``: exit code, each contract's verdict, the output."""
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],  # reads ./pyproject.toml
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},  # one contract per line: no wrapped names
    )
    output = result.stdout + result.stderr
    verdicts = {}
    for line in output.splitlines():
        for name in CONTRACTS:
            if line.startswith(name + " "):
                verdicts[name] = line[len(name) + 1 :].split()[0]
    return result.returncode, verdicts, output


def test_the_contracts_hold_on_this_tree():
    code, verdicts, output = lint_imports(REPO)
    assert code == 0, output
    assert verdicts == {name: "KEPT" for name in CONTRACTS}, output
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in output


def copy_tree(tmp_path: Path) -> Path:
    """The four packages' sources and pyproject.toml, copied to a directory of their own."""
    root = tmp_path / "tree"
    for package in ROOTS:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


ENGINE_NOT_COCKPIT = "engine, presets and configs never import cockpit"
WIDGETS_NOT_CHECKS = "widgets never import the readiness checks"
TORCH_FREE = "torch-free modules never import the torch stack"
COCKPIT_DEFERRED = "cockpit reaches the torch stack only through the deferred imports listed"

# The module that gets one more import, the import, the chain reported, and the contracts it breaks.
VIOLATIONS = [
    ("engine/rundir.py", "import cockpit\n", "engine.rundir -> cockpit", {ENGINE_NOT_COCKPIT}),
    (
        "cockpit/widgets/bars.py",
        "from cockpit.checks import base\n",
        "cockpit.widgets.bars -> cockpit.checks.base",
        {WIDGETS_NOT_CHECKS},
    ),
    # inside a function: still an import to import-linter, so a torch-free module may not have one
    (
        "cockpit/run_state.py",
        "def _late():\n    import torch\n",
        "cockpit.run_state -> torch",
        {TORCH_FREE, COCKPIT_DEFERRED},
    ),
    # the wizard's review and launch reach the checks (in workers): a torch import there breaks both
    (
        "cockpit/checks/dry_run.py",
        "import torch\n",
        "cockpit.checks.dry_run -> torch",
        {TORCH_FREE, COCKPIT_DEFERRED},
    ),
]


@pytest.mark.parametrize("path, line, chain, broken", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_one_violating_import_breaks_its_contract(tmp_path, path, line, chain, broken):
    assert broken <= CONTRACTS.keys(), f"pyproject.toml names its contracts {sorted(CONTRACTS)}"
    root = copy_tree(tmp_path)
    with open(root / path, "a", encoding="utf-8") as f:
        f.write("\n" + line)
    code, verdicts, output = lint_imports(root)
    assert code == 1, output
    assert verdicts == {name: "BROKEN" if name in broken else "KEPT" for name in CONTRACTS}, output
    assert chain in output, output


def eager_imports(root: Path, importer: str, imported: str) -> list[str]:
    """Where module ``importer`` (under ``root``) imports ``imported`` or a submodule of it outside
    any function and outside ``if TYPE_CHECKING``: that import runs when ``importer`` is imported."""
    path = root.joinpath(*importer.split("."))
    is_package = path.is_dir()
    path = path / "__init__.py" if is_package else path.with_suffix(".py")
    package = importer if is_package else importer.rpartition(".")[0]

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{parent}.{base}".rstrip(".")
        return [base] + [f"{base}.{alias.name}" for alias in node.names]

    def visit(node: ast.AST, deferred: bool) -> list[str]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            deferred = True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return [found for child in node.orelse for found in visit(child, deferred)]
        found = []
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not deferred:
            if any(name == imported or name.startswith(imported + ".") for name in names(node)):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
        return found + [hit for child in ast.iter_child_nodes(node) for hit in visit(child, deferred)]

    return visit(ast.parse(path.read_text(encoding="utf-8")), False)


def deferred_imports() -> list[tuple[str, str]]:
    """Every import a contract lets through: "importer -> imported" pairs from ignore_imports."""
    pairs = []
    for contract in CONTRACTS.values():
        for expression in contract.get("ignore_imports", []):
            importer, _, imported = expression.partition(" -> ")
            pairs.append((importer.strip(), imported.strip()))
    return pairs


@pytest.mark.parametrize("importer, imported", deferred_imports())
def test_each_allowed_import_runs_only_when_a_function_needs_it(importer, imported):
    assert eager_imports(REPO, importer, imported) == []


def test_an_allowed_import_moved_to_module_level_is_found(tmp_path):
    importer, imported = deferred_imports()[0]
    root = copy_tree(tmp_path)
    path = root.joinpath(*importer.split(".")).with_suffix(".py")
    source = path.read_text(encoding="utf-8")
    path.write_text(source + f"\nimport {imported}\n", encoding="utf-8")
    line = source.count("\n") + 2
    assert eager_imports(root, importer, imported) == [f"{path.relative_to(root)}:{line}"]
    # import-linter alone keeps its contracts: the same pair is still one ignored import
    code, _, output = lint_imports(root)
    assert code == 0, output
