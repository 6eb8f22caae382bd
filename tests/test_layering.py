"""The package's layering, read from the source with ``ast`` (imports inside functions included): the cache
and checksum leaf ``store``, the base registry ``bases``, the torch-free ``build`` and ``models`` import
one way, ``store <- bases <- build <- models``, and no chain of imports through any other module leads
from one of them back to itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "aspd_local"
SRC = Path(__file__).resolve().parents[1] / PACKAGE
LAYERS = ["store", "bases", "build", "models"]  # each may import only those before it
LEAF_MAY_IMPORT = {"errors"}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _known(name: str) -> str | None:
    """The package module that importing ``name`` runs (itself, or the nearest package above it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            anchor = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            anchor = node.module or ""
        # `from . import bases` imports the submodule bases; `from .models import cache_dir` imports models
        names = [f"{anchor}.{a.name}" if f"{anchor}.{a.name}" in MODULES else anchor for a in node.names]
    found = {_known(n) for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}
    # (the packages above a module, run before it, count only where it names something of theirs)
    return {t for t in found if t and t != module}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = set()
        for node in ast.walk(tree):  # every import: top level, inside functions, under `if`
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= _targets(module, path, node)
    return graph


GRAPH = _graph()


def _cycle_through(start: str) -> list[str] | None:
    """A chain of imports from ``start`` back to ``start``, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, chain = stack.pop()
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt == start:
                return chain + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, chain + [nxt]))
    return None


def _mod(name: str) -> str:
    return f"{PACKAGE}.{name}"


def test_the_parser_sees_function_level_imports():
    tree = ast.parse("def f():\n    from .models import cache_dir\n    from . import bases\n")
    got = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            got |= _targets(_mod("build"), SRC / "build.py", node)
    assert got == {_mod("models"), _mod("bases")}


@pytest.mark.parametrize("name", LAYERS)
def test_layers_exist(name):
    assert _mod(name) in MODULES, f"{PACKAGE}/{name}.py is missing"


def test_layers_import_one_way():
    bad = [f"{a} imports {b}" for i, a in enumerate(LAYERS) for b in LAYERS[i:]
           if _mod(b) in GRAPH.get(_mod(a), ())]
    assert not bad, "the layers are " + " <- ".join(LAYERS) + ", but " + "; ".join(bad)


@pytest.mark.parametrize("name", LAYERS)
def test_no_import_cycle(name):
    cycle = _cycle_through(_mod(name))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_store_is_a_leaf():
    assert _mod("store") in MODULES, f"{PACKAGE}/store.py is missing"
    others = sorted(GRAPH[_mod("store")] - {_mod(m) for m in LEAF_MAY_IMPORT})
    assert not others, f"{PACKAGE}.store may import only {sorted(LEAF_MAY_IMPORT)} of the package, not {others}"
