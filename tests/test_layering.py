"""The package's imports follow its layers (docs/architecture.md, "Layers").

The layer table in docs/architecture.md is the only definition of the layers; this file parses it
and reads the package's imports with `ast` (no mas module is imported). Two rules:

- layers: a module imports only modules of a strictly lower layer, or of its own entry (a row of
  the table lists one or more entries, e.g. `mas.games`; an entry is a module and everything under
  it). Imports inside functions, or under `if TYPE_CHECKING:`, count like any other. The top
  package `mas/__init__.py` belongs to the lowest layer, and anything may import it (Python runs
  it before any mas module anyway). Every module belongs to exactly one entry.
- cycles: no cycle of modules importing each other. An import inside a function is an edge like
  any other: deferring an import only hides a cycle, the two modules still need each other (at
  import time a cycle of module-level imports fails outright or sees half-built modules). Imports
  under `if TYPE_CHECKING:` never run and are no edges. A package's `__init__` importing its own
  submodules is no cycle unless one of them imports the package back.

The checker works on any source root, so the tests below also run it on a made-up package.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "mas"
TABLE = REPO / "docs" / "architecture.md"


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a submodule where `from x import y` names one)
    lineno: int
    module_level: bool  # runs when the importer is imported (not in a function, not TYPE_CHECKING)
    type_only: bool = False  # under `if TYPE_CHECKING:`: never runs


# --- the layer table ------------------------------------------------------------------------------
def parse_layers(markdown: str) -> dict[str, int]:
    """Entry -> layer, from the first table under the `## Layers` heading: first column the layer
    number, second column the entries in backquotes; other columns are prose."""
    section = re.search(r"^## Layers[ \t]*\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    if section is None:
        raise ValueError("no '## Layers' section")
    entries: dict[str, int] = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) < 2 or not cells[0].isdigit():
            continue  # prose, the header row or the separator row
        for name in re.findall(r"`([\w.]+)`", cells[1]):
            if name in entries:
                raise ValueError(f"layer table: {name} is listed twice")
            entries[name] = int(cells[0])
    if not entries:
        raise ValueError("the '## Layers' section has no table rows")
    for a in entries:
        for b in entries:
            if a != b and a.startswith(b + "."):
                raise ValueError(f"layer table: entry {a} lies inside entry {b}")
    return entries


def entry_of(module: str, entries: dict[str, int], package: str) -> str | None:
    """The entry a module belongs to: the top package is its own entry; else the entry that is the
    module or one of its parents; None when there is none."""
    if module == package:
        return package
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in entries:
            return ".".join(parts[:i])
    return None


def layer_of(entry: str, entries: dict[str, int], package: str) -> int:
    return min(entries.values()) if entry == package else entries[entry]


# --- reading imports ------------------------------------------------------------------------------
def list_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> path, for every .py file of `package` under `root`."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, runs: bool = True, type_only: bool = False):
    """Yield (import node, runs at import time, under TYPE_CHECKING) for every import in `node`."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, runs and not type_only, type_only
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        runs = False
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.body:
            yield from _walk(child, runs, True)
        for child in node.orelse:
            yield from _walk(child, runs, type_only)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, runs, type_only)


def read_imports(root: Path, package: str) -> list[Import]:
    """Every import of a `package` module by a module of `package` under `root`."""
    modules = list_modules(root, package)
    found = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node, runs, type_only in _walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from the importer's package, up level - 1
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in modules else source)
            for target in dict.fromkeys(targets):
                if target == package or target.startswith(package + "."):
                    found.append(Import(name, target, node.lineno, runs, type_only))
    return found


# --- the checks -----------------------------------------------------------------------------------
def _where(module: str, modules: dict[str, Path], root: Path, lineno: int | None = None) -> str:
    path = modules[module].relative_to(root).as_posix()
    return f"{path}:{lineno}" if lineno is not None else path


def layer_violations(root: Path, package: str, entries: dict[str, int]) -> list[str]:
    """One line per module in no entry and per import that points up or sideways."""
    modules = list_modules(root, package)
    out = []
    for module in modules:
        if entry_of(module, entries, package) is None:
            out.append(f"{_where(module, modules, root)}: {module} belongs to no entry of the layer table")
    for imp in read_imports(root, package):
        source = entry_of(imp.importer, entries, package)
        target = entry_of(imp.imported, entries, package)
        if source is None or target == package or source == target:
            continue  # an unlisted importer is reported above; the top package is open to all
        where = _where(imp.importer, modules, root, imp.lineno)
        if target is None:
            if imp.imported not in modules:
                out.append(f"{where} imports {imp.imported}, which belongs to no entry of the layer table")
            continue
        low, high = layer_of(source, entries, package), layer_of(target, entries, package)
        if high > low:
            out.append(f"{where} imports {imp.imported} (layer {high} '{target}' above layer {low} '{source}')")
        elif high == low:
            out.append(f"{where} imports {imp.imported} (layer {high} '{target}' is the same layer as '{source}', "
                       "another entry)")
    return out


def _shortest_cycle(start: str, graph: dict[str, dict], allowed: set[str]) -> list[str]:
    """The shortest path start -> ... -> start within `allowed` (breadth first, sorted neighbours)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, {})):
                if nxt not in allowed:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")


def _components(graph: dict[str, dict]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(component)
    return result


def import_cycles(root: Path, package: str) -> list[str]:
    """One line per import cycle: its modules in import order, then where each imports the next
    ("in a function" for a deferred import). Every module of a tangle is on a reported cycle."""
    modules = list_modules(root, package)
    graph: dict[str, dict[str, tuple[bool, int]]] = {m: {} for m in modules}
    for imp in read_imports(root, package):
        if imp.type_only or imp.importer == imp.imported or imp.imported not in modules:
            continue
        edge = (not imp.module_level, imp.lineno)  # the first module-level import, else the first one
        graph[imp.importer][imp.imported] = min(graph[imp.importer].get(imp.imported, edge), edge)
    out = []
    for component in sorted(_components(graph), key=min):
        covered: set[str] = set()
        for start in sorted(component):
            if start in covered:
                continue
            cycle = _shortest_cycle(start, graph, component)
            covered.update(cycle)
            first = cycle.index(min(cycle))
            cycle = cycle[first:] + cycle[:first]  # read from its first module by name
            steps = []
            for a, b in zip(cycle, cycle[1:] + cycle[:1]):
                deferred, lineno = graph[a][b]
                steps.append(_where(a, modules, root, lineno) + (" in a function" if deferred else ""))
            out.append(f"import cycle: {' -> '.join(cycle + cycle[:1])} ({', '.join(steps)})")
    return out


def check(root: Path, package: str, markdown: str) -> list[str]:
    entries = parse_layers(markdown)
    return layer_violations(root, package, entries) + import_cycles(root, package)


# --- tests ----------------------------------------------------------------------------------------
def test_the_package_follows_its_layers():
    problems = check(REPO, PACKAGE, TABLE.read_text())
    if problems:
        pytest.fail(f"{len(problems)} layering problem(s) (docs/architecture.md, 'Layers'):\n" + "\n".join(problems),
                    pytrace=False)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


_FAKE_TABLE = """# fake

## Layers

| layer | modules | what |
|---|---|---|
| 1 | `fake.base`, `fake.util` | bottom |
| 2 | `fake.top` | top |

## Next section

| 3 | `fake.ignored` | not the layer table |
"""


def test_the_checker_reports_an_upward_import_a_sideways_import_a_stray_module_and_a_cycle(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/base.py": "import os\n\ndef late():\n    from fake.top import helper  # upward, in a function\n",
        "fake/util.py": "from fake import base\n",  # another entry of the same layer
        "fake/stray.py": "",
        "fake/top/__init__.py": "from fake.top import a\n",
        "fake/top/a.py": "from . import b\n",
        "fake/top/b.py": "import fake.top.a\nfrom fake.base import late\n",
        "fake/top/helper.py": "def f():\n    from fake.top import c  # a cycle hidden in a function\n",
        "fake/top/c.py": "from fake.top.helper import f\n",
    })
    assert check(tmp_path, "fake", _FAKE_TABLE) == [
        "fake/stray.py: fake.stray belongs to no entry of the layer table",
        "fake/base.py:4 imports fake.top.helper (layer 2 'fake.top' above layer 1 'fake.base')",
        "fake/util.py:1 imports fake.base (layer 1 'fake.base' is the same layer as 'fake.util', another entry)",
        "import cycle: fake.top.a -> fake.top.b -> fake.top.a (fake/top/a.py:1, fake/top/b.py:1)",
        "import cycle: fake.top.c -> fake.top.helper -> fake.top.c "
        "(fake/top/c.py:1, fake/top/helper.py:2 in a function)",
    ]


def test_the_checker_accepts_downward_imports_and_a_package_that_imports_its_submodules(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "__version__ = '0'\n",
        "fake/base.py": "import fake\nfrom typing import TYPE_CHECKING\n"
                        "if TYPE_CHECKING:\n    from fake.util import x\n",
        "fake/util.py": "x = 1\n",
        "fake/top/__init__.py": "from fake.top import a, b\nfrom .a import f\n",
        "fake/top/a.py": "from fake.base import *\nfrom .b import g\n\ndef f():\n    import fake.top.b\n",
        "fake/top/b.py": "from fake import base\nimport numpy\nfrom typing import TYPE_CHECKING\n"
                         "if TYPE_CHECKING:\n    from fake.top.a import f  # types only: no cycle\n"
                         "\ndef g():\n    pass\n",
    })
    table = ("## Layers\n\n| layer | modules |\n|---|---|\n"
             "| 1 | `fake.util` |\n| 2 | `fake.base` |\n| 3 | `fake.top` |\n")
    assert parse_layers(table) == {"fake.util": 1, "fake.base": 2, "fake.top": 3}
    assert check(tmp_path, "fake", table) == []


def test_the_imports_are_read_with_their_kind(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/a/__init__.py": "from . import b\nfrom .b import name\n",
        "fake/a/b.py": "from typing import TYPE_CHECKING\n"
                       "if TYPE_CHECKING:\n    import fake.c\nelse:\n    import fake\n"
                       "class K:\n    from .. import c\n    def m(self):\n        from fake.c import thing\n",
        "fake/c.py": "",
    })
    assert sorted(read_imports(tmp_path, "fake"), key=lambda i: (i.importer, i.lineno)) == [
        Import("fake.a", "fake.a.b", 1, True),
        Import("fake.a", "fake.a.b", 2, True),
        Import("fake.a.b", "fake.c", 3, False, type_only=True),
        Import("fake.a.b", "fake", 5, True),
        Import("fake.a.b", "fake.c", 7, True),
        Import("fake.a.b", "fake.c", 9, False),
    ]


@pytest.mark.parametrize("rows, error", [
    ("| 1 | `m.a` |\n| 2 | `m.a.b` |", "entry m.a.b lies inside entry m.a"),
    ("| 1 | `m.a` |\n| 2 | `m.a` |", "m.a is listed twice"),
    ("no table", "has no table rows"),
])
def test_a_malformed_layer_table_fails_in_one_line(rows, error):
    with pytest.raises(ValueError, match=error):
        table = f"| layer | modules |\n|---|---|\n{rows}" if "|" in rows else rows
        parse_layers(f"## Layers\n\n{table}\n")
