"""Import graph of metrics/, jwbdh_callbacks/ and benchmarks/, read with ``ast`` (nothing is imported).

Checked (issue 12 "no import loop (checked in a test)", DESIGN s1 layering):
- no cycle among module-level imports of the three packages;
- no cycle in benchmarks/ even counting function-level imports (``python -m benchmarks`` once looped
  ``__main__`` <-> ``frechet_bench`` <-> ``pipeline_bench``);
- ``metrics/`` imports neither ``jwbdh_callbacks`` nor lightning at module level (lazy imports inside a
  function are allowed: that is how optional layers are reached);
- neither ``metrics/`` nor ``jwbdh_callbacks/`` imports ``benchmarks`` at all (it is not shipped).

"Module level" means executed when the module is imported: the module body, class bodies, ``try``/``if``
blocks, except ``if TYPE_CHECKING:`` (never run) and ``if __name__ == "__main__":`` (run only as a script,
under another module name). Imports inside functions and lambdas are "lazy".

Example of the cycle finder:
    >>> find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b', 'a']]
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("metrics", "jwbdh_callbacks", "benchmarks")
LIGHTNING = ("lightning", "pytorch_lightning", "lightning_fabric")


@dataclass(frozen=True)
class Import:
    """One import edge: ``source`` imports ``target`` at ``path:line``; ``lazy`` if inside a function."""

    source: str
    target: str
    path: str
    line: int
    lazy: bool


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """``{dotted module name: file}`` for every .py file under ``root/<package>`` (``__init__`` = package)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, *test.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
    )


def _imports_in(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with ``lazy`` = not executed when the module is imported.

    ``if TYPE_CHECKING:`` bodies are skipped entirely (their ``else`` branch runs, so it is kept).
    """

    def walk(node: ast.AST, lazy: bool) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, lazy
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from walk(child, lazy)
            return
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            for child in node.body:
                yield from walk(child, True)
            for child in node.orelse:
                yield from walk(child, lazy)
            return
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            yield from walk(child, inner)

    yield from walk(tree, False)


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` if it is one of our modules, else its longest prefix that is (None: not ours at all)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def resolve(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: Mapping[str, Path]
) -> list[str]:
    """Modules ``node`` (inside ``module``) imports: ours resolved to a module, others by their full name.

    ``from pkg import name`` is ``pkg.name`` when that is a module, else ``pkg``; relative imports are made
    absolute from ``module``'s package.
    """
    if isinstance(node, ast.Import):
        return [_known(alias.name, modules) or alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        if node.level - 1 > len(package) - 1:
            raise ValueError(f"relative import beyond the top-level package in {module}: level {node.level}")
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            targets.append(submodule)
        else:
            targets.append(_known(base, modules) or base)
    return list(dict.fromkeys(targets))


def collect_imports(
    root: Path = ROOT, packages: Iterable[str] = PACKAGES
) -> tuple[dict[str, Path], list[Import]]:
    """Parse every module of ``packages`` under ``root`` and return ``(modules, imports)``."""
    modules = module_names(root, packages)
    edges: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, lazy in _imports_in(tree):
            for target in resolve(name, is_package, node, modules):
                rel = str(path.relative_to(root))
                edges.append(Import(name, target, rel, node.lineno, lazy))
    return modules, edges


def graph_of(edges: Iterable[Import], modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Adjacency sets between our modules (self-imports dropped: a package reading its own attributes)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for edge in edges:
        if edge.target in modules and edge.target != edge.source:
            graph[edge.source].add(edge.target)
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component that has one (Tarjan, iterative).

    Components and each cycle's start are in sorted order, so the message is stable between runs.

    Example:
        >>> find_cycles({"x": {"y"}, "y": set()})
        []
    """
    adjacency = {node: sorted(set(targets)) for node, targets in graph.items()}
    for targets in list(adjacency.values()):
        for target in targets:
            adjacency.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(adjacency):
        if start in index:
            continue
        work = [(start, iter(adjacency[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(adjacency[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in adjacency[node]:
                    components.append(sorted(component))
    components.sort(key=lambda component: component[0])
    return [_cycle_within(component, adjacency) for component in components]


def _cycle_within(component: list[str], adjacency: Mapping[str, list[str]]) -> list[str]:
    """A shortest cycle through the component's first node, staying inside the component (BFS)."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in adjacency[node]:
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if child in members and child not in parent and child != start:
                    parent[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} inside {component}")  # pragma: no cover


def describe(cycle: list[str], edges: Iterable[Import]) -> str:
    """``a -> b (a.py:12) -> a (b.py:3)``: each step with the import statement that makes it."""
    where = {}
    for edge in edges:
        where.setdefault((edge.source, edge.target), f"{edge.path}:{edge.line}{' lazy' if edge.lazy else ''}")
    steps = [cycle[0]]
    for a, b in itertools.pairwise(cycle):
        steps.append(f"{b} ({where.get((a, b), '?')})")
    return " -> ".join(steps)


@pytest.fixture(scope="module")
def project() -> tuple[dict[str, Path], list[Import]]:
    return collect_imports()


# ---- the project's own graph ----------------------------------------------------------------------------


def test_the_parser_sees_the_project(project):
    """Guard against a vacuous pass: known modules and known import edges are found."""
    modules, edges = project
    assert {"metrics", "metrics.frechet", "jwbdh_callbacks", "benchmarks.__main__"} <= set(modules)
    assert len(modules) > 50
    pairs = {(e.source, e.target) for e in edges if not e.lazy}
    assert ("benchmarks.frechet_bench", "benchmarks.common") in pairs
    assert ("benchmarks.frechet_bench", "metrics.frechet") in pairs
    assert any(s.startswith("jwbdh_callbacks") and t.startswith("metrics") for s, t in pairs)
    # imports inside a function are seen, and classed as lazy
    lazy = {(e.source, e.target) for e in edges if e.lazy}
    assert ("benchmarks.__main__", "benchmarks.frechet_bench") in lazy
    assert ("benchmarks.__main__", "benchmarks.frechet_bench") not in pairs


def test_no_cycle_among_module_level_imports(project):
    modules, edges = project
    eager = [e for e in edges if not e.lazy]
    cycles = find_cycles(graph_of(eager, modules))
    assert not cycles, "module-level import cycles:\n  " + "\n  ".join(describe(c, eager) for c in cycles)


def test_no_cycle_in_benchmarks_even_counting_lazy_imports(project):
    modules, edges = project
    ours = {name: path for name, path in modules.items() if name.split(".")[0] == "benchmarks"}
    within = [e for e in edges if e.source in ours]
    cycles = find_cycles(graph_of(within, ours))
    assert not cycles, "benchmarks/ import cycles (function-level imports included):\n  " + "\n  ".join(
        describe(c, within) for c in cycles
    )


def test_layering_rules(project):
    _, edges = project
    problems = []
    for e in edges:
        source_top, target_top = e.source.split(".")[0], e.target.split(".")[0]
        if source_top == "metrics" and not e.lazy and target_top in ("jwbdh_callbacks", *LIGHTNING):
            problems.append(f"{e.path}:{e.line}: metrics/ imports {e.target} at module level")
        if source_top in ("metrics", "jwbdh_callbacks") and target_top == "benchmarks":
            problems.append(
                f"{e.path}:{e.line}: {source_top}/ imports {e.target} (benchmarks/ is not shipped)"
            )
    assert not problems, "layering (DESIGN s1) broken:\n  " + "\n  ".join(problems)


# ---- the checker itself, on hand-made graphs and packages ----------------------------------------------


def test_find_cycles_on_hand_made_graphs():
    assert find_cycles({}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []  # a DAG
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"s": {"s"}}) == [["s", "s"]]
    # two separate loops, one reported each; the shortest way round (a->c->a, not a->b->c->a)
    two = find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}, "x": {"y"}, "y": {"x"}, "z": {"x"}})
    assert two == [["a", "c", "a"], ["x", "y", "x"]]
    # a long chain closing on itself: iterative, so no recursion limit
    chain = {f"m{i:05d}": {f"m{i + 1:05d}"} for i in range(5000)}
    chain["m05000"] = {"m00000"}
    (cycle,) = find_cycles(chain)
    assert len(cycle) == 5002 and cycle[0] == cycle[-1] == "m00000"


def _write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_synthetic_package_cycle_is_found_and_described(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from typing import TYPE_CHECKING\nfrom .sub import b\nA = 1\n"
            "if TYPE_CHECKING:\n    from pkg import c\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "import os\nfrom .. import c\n",
            "pkg/c.py": "from pkg import A  # a name, not a module: the package itself\n"
            "def later():\n    from pkg.sub import b\n",
            "pkg/__main__.py": "from pkg import c\n",
        },
    )
    modules, edges = collect_imports(tmp_path, ["pkg"])
    assert set(modules) == {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.c", "pkg.__main__"}
    seen = {(e.source, e.target, e.lazy) for e in edges}
    assert ("pkg.a", "pkg.sub.b", False) in seen  # relative `from .sub import b`, b a module
    assert ("pkg.sub.b", "pkg.c", False) in seen  # `from .. import c`
    assert ("pkg.sub.b", "os", False) in seen  # external imports kept by name (layering checks)
    assert ("pkg.c", "pkg", False) in seen  # `from pkg import A`: A is not a module
    assert ("pkg.c", "pkg.sub.b", True) in seen  # inside a function: lazy
    assert not any(e.source == "pkg.a" and e.target == "pkg.c" for e in edges)  # TYPE_CHECKING skipped
    eager = [e for e in edges if not e.lazy]
    cycles = find_cycles(graph_of(eager, modules))
    assert cycles == [["pkg", "pkg.a", "pkg.sub.b", "pkg.c", "pkg"]]
    text = describe(cycles[0], eager)
    assert text == (
        "pkg -> pkg.a (pkg/__init__.py:1) -> pkg.sub.b (pkg/a.py:2) -> pkg.c (pkg/sub/b.py:2) "
        "-> pkg (pkg/c.py:1)"
    )


def test_main_guard_imports_are_lazy_but_count_for_benchmarks_cycles(tmp_path):
    """The shape of the old benchmarks loop: a runner importing a bench lazily, the bench's script guard
    importing the runner back. Not a module-level cycle, but a cycle once lazy imports count."""
    _write(
        tmp_path,
        {
            "bench/__init__.py": "",
            "bench/__main__.py": "def registry():\n    from bench import one\n    return one\n",
            "bench/one.py": "import bench.common\n"
            "if __name__ == '__main__':\n    from bench.__main__ import registry\n",
            "bench/common.py": "",
        },
    )
    modules, edges = collect_imports(tmp_path, ["bench"])
    assert find_cycles(graph_of([e for e in edges if not e.lazy], modules)) == []
    assert find_cycles(graph_of(edges, modules)) == [["bench.__main__", "bench.one", "bench.__main__"]]
