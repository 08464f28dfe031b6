"""The package's layering rules, checked on the source (ast, nothing imported):

1. no import cycles among musicjudge modules. Imports anywhere in a module count, function-level
   (lazy) ones too, because a lazy import is still a dependency; not counted: package
   ``__init__`` files below their top level (lazy package faces: module ``__getattr__``) and
   ``if TYPE_CHECKING:`` blocks (the rules of ``shared/tools/import_cycles.py``).
2. no module uses another module's private names: ``from musicjudge.x import _y`` or ``x._y``
   where ``x`` is a musicjudge module. What is shared is public (and documented) in its home
   module. Dunder names (``__version__``) are public.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "musicjudge"

#: Private-name uses across modules that are allowed (none: every shared name is public).
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    base = node.module or ""
    if node.level:
        pkg = _package(module, path).split(".")
        parts = pkg[: len(pkg) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return base


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    return {id(n) for b in ast.walk(tree)
            if isinstance(b, ast.If) and "TYPE_CHECKING" in ast.dump(b.test) for n in ast.walk(b)}


def import_graph() -> dict[str, set[str]]:
    """module -> the musicjudge modules it imports (see the module docstring for what counts)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        nodes = tree.body if path.name == "__init__.py" else [n for n in ast.walk(tree) if id(n) not in skip]
        for node in nodes:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, path, node)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            graph[module].update(t for t in targets if t in MODULES and t != module)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses() -> list[tuple[str, int, str]]:
    """(module, line, "home.module._name") for every use of another musicjudge module's private name."""
    hits = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: dict[str, str] = {}  # local name -> musicjudge module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(module, path, node)
                if base != "musicjudge" and not base.startswith("musicjudge."):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in MODULES:  # a submodule
                        names[alias.asname or alias.name] = full
                    elif _is_private(alias.name) and base != module:
                        hits.append((module, node.lineno, full))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES:
                        # ``import a.b.c`` binds ``a``; ``import a.b.c as x`` binds x to a.b.c
                        local = alias.asname or alias.name.split(".")[0]
                        names[local] = alias.name if alias.asname else alias.name.split(".")[0]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if not (isinstance(value, ast.Name) and value.id in names):
                continue
            target = ".".join([names[value.id], *reversed(chain)])
            if target in MODULES and target != module:
                hits.append((module, node.lineno, f"{target}.{node.attr}"))
    return sorted(set(hits))


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles among musicjudge modules (move the shared piece to a leaf module):\n" + \
        "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_sees_cycles():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    # function-level imports count: engine imports lm.scoring only inside functions
    assert "musicjudge.lm.scoring" in graph["musicjudge.lm.engine"]


def test_no_private_names_across_modules():
    hits = private_uses()
    allowed = [h for h in hits if (h[0], h[2]) in ALLOWED_PRIVATE]
    if allowed:
        print("private names still used across modules (allowed for now, see ALLOWED_PRIVATE):")
        for module, line, name in allowed:
            print(f"  {module}:{line}: {name}")
    bad = [h for h in hits if (h[0], h[2]) not in ALLOWED_PRIVATE]
    assert not bad, "modules using another module's private names (make the name public in its home module):\n" + \
        "\n".join(f"  {m}:{line}: {name}" for m, line, name in bad)
    stale = ALLOWED_PRIVATE - {(h[0], h[2]) for h in hits}
    assert not stale, f"ALLOWED_PRIVATE entries no longer needed; remove them: {sorted(stale)}"
