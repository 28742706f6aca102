"""The packages show the data flow, and the arrows point one way (the layout in docs/layout.md).

Every import of hwnas code, at module level or inside a function (not under ``TYPE_CHECKING``), goes to its own
package or to one below it in LAYERS; no module imports its own package's ``__init__``; and no modules import
each other in a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

# lowest first: a package may import only itself and those before it
LAYERS = ["hwnas.core", "hwnas.profilers", "hwnas.spaces", "hwnas.latency", "hwnas.measuring", "hwnas.evaluate",
          "hwnas.search", "hwnas.finalize", "hwnas.bench", "hwnas.app"]
OUTSIDE = {"hwnas", "hwnas._imports", "hwnas.__main__"}  # the package's own entry: above every layer


def modules() -> dict[str, Path]:
    found = {}
    for base, pkg in ((ROOT / "hwnas", "hwnas"), (ROOT / "profilers", "hwnas.profilers")):
        for p in base.rglob("*.py"):
            parts = [x for x in p.relative_to(base).with_suffix("").parts if x != "__init__"]
            found[".".join([pkg, *parts])] = p
    return found


def imports(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported hwnas module, line, at module level) for each import of ``path``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks never run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try))
                                          for n in ast.walk(s)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.append((name, node.lineno, id(node) in top))
    return out


def layer(module: str) -> int | None:
    for i, pkg in enumerate(LAYERS):
        if module == pkg or module.startswith(pkg + "."):
            return i
    return None


def test_every_module_is_in_a_layer():
    assert [m for m in modules() if layer(m) is None and m not in OUTSIDE] == []


def test_imports_point_down_the_layers():
    mods = modules()
    wrong = []
    for name, path in mods.items():
        if name in OUTSIDE:
            continue
        for target, line, _ in imports(path, set(mods)):
            if target in OUTSIDE - {"hwnas"}:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            elif target != "hwnas" and layer(target) > layer(name):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({LAYERS[layer(name)]} is below "
                             f"{LAYERS[layer(target)]})")
    assert wrong == []


def test_no_module_imports_its_own_package():
    """A module never imports its own package's ``__init__``, at module level or inside a function: the
    ``__init__`` re-exports the package's modules, so such an import is a cycle (module -> package -> the
    modules it re-exports -> ... -> module) that the cycle test below forgives for re-exports. Import the
    module that defines the name instead."""
    mods = modules()
    wrong = [f"{path.relative_to(ROOT)}:{line} imports its own package {target}"
             for name, path in mods.items() if name not in OUTSIDE
             for target, line, _ in imports(path, set(mods))
             if name.startswith(target + ".") and mods[target].name == "__init__.py" and target != "hwnas"]
    assert wrong == []


def test_no_import_cycles():
    """Between modules, counting imports inside functions too: a cycle hidden in a function is still a
    cycle (it decides the order modules must load in, and which can be understood alone)."""
    mods = modules()
    graph = {m: {t for t, _, _ in imports(p, set(mods)) if t != m and t in mods and t not in OUTSIDE}
             for m, p in mods.items() if m not in OUTSIDE}
    # a package's __init__ re-exporting its modules is not a cycle with them
    graph = {m: {t for t in ts if not (m.startswith(t + ".") and mods[t].name == "__init__.py")}
             for m, ts in graph.items()}
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
