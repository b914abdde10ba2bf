"""The import layering of docs/architecture.md, read from the source: no upward import, no cycle.

Every import of every module of jax_ast/, train/, eval/ and benchmarks/ counts, also one inside a function (a
function-level import hides a cycle from Python, not from a reader). Layers, lowest first: jax_ast, train,
eval, benchmarks; inside eval, the sub-packages in `EVAL_ORDER` (`eval/__init__.py` states the same order).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("jax_ast", "train", "eval", "benchmarks")  # a package imports only from itself and those before it
# eval's sub-packages by level: a module imports only from its own sub-package and those on a lower level, so
# two sub-packages on one level (stylize and score; deception and app) never import each other. The top level
# is the thin entry modules at eval's top (`eval.run`, `eval.compare`, `eval.artist_classifier`).
EVAL_ORDER = {"common": 0, "inference": 1, "stylize": 2, "score": 2, "export": 2, "deception": 3, "app": 3,
              "reproduce": 4}
EVAL_ENTRY_LEVEL = 5

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py"))}


def _dynamic_prefix(node: ast.Call, name: str) -> str | None:
    """``P`` for ``importlib.import_module(f"P.{...}")`` (``f"{__name__}.{...}"`` counts as `name`)."""
    func, args = node.func, node.args
    if not (isinstance(func, ast.Attribute) and func.attr == "import_module" and args
            and isinstance(args[0], ast.JoinedStr) and args[0].values):
        return None
    first = args[0].values[0]
    if isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name) and first.value.id == "__name__":
        return name
    if isinstance(first, ast.Constant) and str(first.value).endswith("."):
        return str(first.value)[:-1]
    return None


def _imports(name: str, path: Path) -> set[str]:
    """The project modules that importing `name` runs, read from its file: every import statement anywhere in it
    (``from p import m`` counts as p.m when m is a module), the packages above each imported module (Python runs
    their ``__init__`` first; not those holding `name` itself), and every submodule of P for a registry's
    ``importlib.import_module(f"P.{...}")``."""
    modules, found = _modules(), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif isinstance(node, ast.Call) and (prefix := _dynamic_prefix(node, name)):
            targets = [module for module in modules if module.rpartition(".")[0] == prefix]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a non-module attribute path
                target = target.rpartition(".")[0]
            while target and target != name and not (name + ".").startswith(target + "."):
                found.add(target)
                target = target.rpartition(".")[0]
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in _modules().items()}


def _eval_level(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in EVAL_ORDER):
        return parts[1], EVAL_ORDER[parts[1]]
    return "", EVAL_ENTRY_LEVEL  # eval itself and its top-level entry modules


def test_the_walk_sees_every_layer_and_imports_inside_functions():
    graph = _graph()
    assert {name.split(".")[0] for name in graph} == set(LAYERS)
    assert "eval.inference.loading" in graph["eval.score.run"]
    assert "train.loop" in graph["eval.reproduce.cli"]  # imported inside `train_model`


def test_no_upward_import():
    upward = [f"{source} -> {target}" for source, targets in _graph().items() for target in sorted(targets)
              if LAYERS.index(target.split(".")[0]) > LAYERS.index(source.split(".")[0])]
    assert not upward, f"imports against the layer order {' < '.join(LAYERS)}: {upward}"


def test_eval_sub_packages_import_only_downwards():
    wrong = []
    for source, targets in _graph().items():
        if source.split(".")[0] != "eval":
            continue
        package, level = _eval_level(source)
        for target in sorted(t for t in targets if t.split(".")[0] == "eval"):
            target_package, target_level = _eval_level(target)
            if target_package != package and target_level >= level:
                wrong.append(f"{source} -> {target}")
    assert not wrong, f"eval imports against the order {EVAL_ORDER} (entry modules last): {wrong}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycle():
    graph = _graph()
    assert not _cycles(graph), f"import cycles (each a set of modules that import each other): {_cycles(graph)}"


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
