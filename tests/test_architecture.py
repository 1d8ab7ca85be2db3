"""Imports point down (docs/architecture.md): the import graph of src/anogen has no circle, and nothing below the
command line imports it.

The graph is read from the source with ``ast``: ``import anogen.x``, ``from anogen.x import y``, ``from anogen import
x`` and relative imports, at the top of a module and inside functions. Conventions:

- ``from anogen import x`` is an edge to the module ``anogen.x`` when there is one, else to the package facade
  ``anogen`` (``anogen/__init__.py``); ``import anogen`` is an edge to the facade. Importing ``anogen.x`` also runs the
  facade first, as for any package; that implicit step is not an edge (it would make every module a circle).
- Imports under ``if TYPE_CHECKING:`` are for type annotations only and never run: they are not edges.
- ``anogen.detectors`` imports every module in it with ``importlib`` (registration): edges to all of them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "anogen"
PLUGIN_PACKAGES = ("anogen.detectors",)  # packages whose __init__ imports every module in them dynamically


def module_files(src: Path = SRC) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the package at ``src``."""
    out = {}
    for f in sorted(src.rglob("*.py")):
        parts = list(f.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of(name: str, source: str, modules: set[str], *, is_package: bool = False, top: str = "anogen") -> set[str]:
    """The modules of ``modules`` (of the package ``top``) that the module ``name`` (with this ``source``) imports."""
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == top)
            continue
        if node.level:  # relative: from . import x / from ..y import z
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != top:
            continue
        subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
        out.update(subs)
        if len(subs) < len(node.names):  # some names are attributes of the module itself
            out.add(target)
    return {m for m in out if m in modules and m != name}


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = module_files(src)
    names = set(files)
    graph = {n: imports_of(n, f.read_text(), names, is_package=f.name == "__init__.py") for n, f in files.items()}
    for pkg in PLUGIN_PACKAGES:
        if pkg in graph:
            graph[pkg] |= {m for m in names if m.startswith(pkg + ".") and not m.rpartition(".")[2].startswith("_")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def documented_layers(page: Path = ROOT / "docs" / "architecture.md") -> dict[str, int]:
    """``{module: layer}`` from the table of docs/architecture.md (rows ``| 3 | `detectors` | ... |``)."""
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`([^`]+)`", page.read_text(), re.M)
    return {("anogen" if name == "anogen" else f"anogen.{name}"): int(layer) for layer, name in rows}


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of ``module``: its own row, else its package's (a package row covers every module in it)."""
    while module:
        if module in layers:
            return layers[module]
        module = module.rpartition(".")[0]
    return None


# ------------------------------------------------------------------------------------------------ the finder works
def test_find_cycle_detects_a_hand_made_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None  # a diamond is no circle


def test_imports_of_reads_every_form() -> None:
    mods = {"anogen", "anogen.x", "anogen.y", "anogen.sub", "anogen.sub.z", "anogen.sub.w", "anogen.v", "anogen.t"}
    src = (
        "import os\nimport anogen.x\nfrom anogen import __version__, y\nfrom . import z\nfrom .w import f\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anogen.t import T\n"
        "def later():\n    from ..v import g\n"
    )
    got = imports_of("anogen.sub.q", src, mods)
    assert got == {"anogen.x", "anogen.y", "anogen", "anogen.sub.z", "anogen.sub.w", "anogen.v"}


def test_a_circle_in_files_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "anogen"
    (pkg / "detectors").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from anogen.high import g\n")  # inside a function: still an edge
    (pkg / "high.py").write_text("from anogen.low import f\n")
    (pkg / "detectors" / "__init__.py").write_text("")
    assert find_cycle(import_graph(pkg)) in (["anogen.high", "anogen.low", "anogen.high"],
                                             ["anogen.low", "anogen.high", "anogen.low"])


# ------------------------------------------------------------------------------------------------ the package
def test_the_package_has_no_import_circle() -> None:
    graph = import_graph()
    assert len(graph) > 30 and "anogen.detector" in graph["anogen.detectors.ae"]  # the graph was really read
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_every_import_points_down_the_documented_layers() -> None:
    layers = documented_layers()
    assert len(layers) > 20 and layers["anogen._util"] == 0 and layers["anogen.cli"] > layers["anogen.bench"]
    graph = import_graph()
    undocumented = sorted(m for m in graph if layer_of(m, layers) is None)
    assert not undocumented, f"add these modules to the layer table of docs/architecture.md: {undocumented}"
    upward = [f"{a} (layer {layer_of(a, layers)}) -> {b} (layer {layer_of(b, layers)})"
              for a, deps in sorted(graph.items()) for b in sorted(deps)
              if layer_of(b, layers) > layer_of(a, layers)]  # type: ignore[operator]
    assert not upward, "imports pointing up: " + "; ".join(upward)


def test_layer_check_catches_an_upward_import() -> None:
    layers = {"anogen.low": 0, "anogen.high": 1, "anogen.pkg": 1}
    assert layer_of("anogen.pkg.mod", layers) == 1 and layer_of("anogen.other", layers) is None
    graph = {"anogen.low": {"anogen.high"}, "anogen.high": set()}
    assert [(a, b) for a, deps in graph.items() for b in deps if layer_of(b, layers) > layer_of(a, layers)]


def test_detectors_package_still_registers_dynamically() -> None:
    # the PLUGIN_PACKAGES rule above holds only while the package __init__ imports its modules with importlib
    assert "import_module" in (SRC / "detectors" / "__init__.py").read_text()


@pytest.mark.parametrize("module", ["anogen.run", "anogen.bench", "anogen.speed", "anogen.report"])
def test_pipeline_and_benchmarks_do_not_import_the_cli(module: str) -> None:
    graph = import_graph()
    assert module in graph
    assert "anogen.cli" not in graph[module]


def test_only_the_entry_point_imports_the_cli() -> None:
    graph = import_graph()
    users = sorted(n for n, deps in graph.items() if "anogen.cli" in deps)
    assert users == ["anogen.__main__"]


def test_bottom_layer_imports_nothing_of_anogen() -> None:
    graph = import_graph()
    for low in ("anogen._util", "anogen._registry", "anogen.metrics", "anogen.nets"):  # losses: params (domains)
        assert graph[low] == set(), f"{low} imports {sorted(graph[low])}"
    for mod in ("anogen.checkpoint", "anogen.distributed", "anogen.inference"):
        assert "anogen.detector" not in graph[mod] and "anogen" not in graph[mod], (mod, sorted(graph[mod]))


def test_scripts_in_benchmarks_do_not_import_the_cli() -> None:
    scripts = sorted((ROOT / "benchmarks").rglob("*.py"))
    assert scripts
    names = set(module_files())
    for f in scripts:
        deps = imports_of("benchmarks." + f.stem, f.read_text(), names)
        assert "anogen.cli" not in deps, f"{f.relative_to(ROOT)} imports anogen.cli"
