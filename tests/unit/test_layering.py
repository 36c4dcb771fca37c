"""The layers of the README's architecture, checked over the source with `ast`.

    entry points   boneage (CLI, `up`), web, worker
    services       services (one function per use case)
    model, storage training, db, migrations
    core           core (torch-free rules and utilities)

A package may import only the packages listed for it below, so arrows point down.
The torch-free packages may not import torch, or the model code, at module level
(the web starts without torch; services load the model lazily, in the worker).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import REPO_ROOT

ALLOWED_IMPORTS = {
    "core": set(),
    "db": {"core"},
    "training": {"core"},
    "migrations": {"core", "db"},
    "services": {"core", "db", "training", "migrations"},
    "web": {"core", "db", "services"},
    "worker": {"core", "db", "services"},
    "boneage": {"core", "db", "training", "migrations", "services", "worker"},
}
PACKAGES = set(ALLOWED_IMPORTS)
TORCH = {"torch", "torchvision", "pytorch_grad_cam", "training"}
TORCH_FREE = {"core", "db", "migrations", "services", "web", "worker"}


def _modules(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


def _imports(path: Path, *, module_level_only: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO_ROOT)}:{line}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_packages_import_only_the_layers_below(package):
    allowed = ALLOWED_IMPORTS[package] | {package}
    wrong = [
        f"{_where(path, line)} imports {name}"
        for path in _modules(package)
        for line, name in _imports(path)
        if name in PACKAGES and name not in allowed
    ]
    assert not wrong, f"{package} may import only {sorted(allowed)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(TORCH_FREE))
def test_torch_free_packages_do_not_import_torch_at_module_level(package):
    wrong = [
        f"{_where(path, line)} imports {name}"
        for path in _modules(package)
        for line, name in _imports(path, module_level_only=True)
        if name in TORCH
    ]
    assert not wrong, "\n".join(wrong)


def test_every_package_is_placed_in_a_layer():
    top_level = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")}
    assert top_level == PACKAGES, "add new packages to ALLOWED_IMPORTS (and the README's architecture)"


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: an upward import is reported."""
    bad = tmp_path / "core" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("def f():\n    from services.assessments import run_assessment\n")
    assert (2, "services") in _imports(bad)


def test_the_docker_image_copies_every_package():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    missing = [p for p in sorted(PACKAGES) if f"COPY {p} ./{p}" not in dockerfile]
    assert not missing, f"Dockerfile does not COPY {missing}"


def test_test_module_names_are_unique():
    """The test folders are not packages, so two test modules with one name collide."""
    names = [path.name for path in (REPO_ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
