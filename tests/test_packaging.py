"""Packaging: pyproject.toml declares exactly the third-party modules that cnnlib imports, and
the version is written once (in cnnlib/__init__.py, read by setuptools)."""

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import cnnlib

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUN_TIME_ONLY = {"ipykernel"}  # never imported, but cnnlib.grading.class_grader starts kernels with it


def imported_top_level_modules(package: Path) -> set[str]:
    """Top-level names of every absolute import in the package's source (inside functions too)."""
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def declared_distributions() -> set[str]:
    return {re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0].lower() for spec in PYPROJECT["project"]["dependencies"]}


def test_every_third_party_import_is_declared_and_nothing_else():
    third_party = imported_top_level_modules(ROOT / "cnnlib") - set(sys.stdlib_module_names) - {"cnnlib"}
    provider = importlib.metadata.packages_distributions()
    missing = [name for name in third_party if name not in provider]
    assert not missing, f"cnnlib imports {missing}, which no installed distribution provides"
    needed = {dist.lower() for name in third_party for dist in provider[name]}
    assert needed | RUN_TIME_ONLY == declared_distributions(), (
        f"pyproject.toml declares {sorted(declared_distributions())}; cnnlib's imports need {sorted(needed)}")


def test_the_version_is_written_once():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cnnlib.__version__"}
    assert importlib.metadata.version("cnnlib") == cnnlib.__version__


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.walk_packages(cnnlib.__path__, "cnnlib.")))
def test_every_module_imports(name):
    importlib.import_module(name)
