"""The package's structure, checked mechanically: imports point one way.

Each module of ``flask_alerting`` belongs to a layer (see docs/architecture.rst); a module
may import from its own layer and the layers below, never from one above. Imports under
``if TYPE_CHECKING:`` are annotations only and are not counted. Within a layer, the
imports must not form a cycle either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flask_alerting"

#: Lowest first. A name stands for the module and, with a trailing ".", for a package's
#: modules. A new module must be placed here (the test says so).
LAYERS: list[tuple[str, set[str]]] = [
    (
        "model and foundations",
        {
            "alert", "config", "_parsers", "_addresses", "_urls", "_files", "_flask",
            "_stack", "_lifecycle", "_text", "_version", "signals", "scrub", "render",
        },
    ),
    ("notifiers", {"notifiers", "notifiers."}),
    ("store and dispatch", {"store", "store.", "dispatch", "flood"}),
    ("delivery", {"delivery", "delivery."}),
    (
        "sources",
        {
            "capture", "capture.", "handler", "timing", "timing_stats", "slow_requests",
            "metrics", "metrics.",
        },
    ),
    ("per-app state, wiring, CLI", {"_state", "_alert_log", "_wiring", "cli"}),
    ("extension", {"_extension"}),
    ("test helpers", {"testing", "pytest_plugin"}),
    ("package", {""}),
]


def module_name(path: Path) -> str:
    """``flask_alerting/delivery/pipeline.py`` -> ``delivery.pipeline`` ("" for the root)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name.endswith(".") and module.startswith(name)):
                return index
    raise AssertionError(f"flask_alerting.{module} is in no layer: add it to LAYERS")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """The modules of the package that ``path`` imports when it runs (function-level
    imports included; ``if TYPE_CHECKING:`` blocks left out)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def resolve(node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            if node.module is None or not node.module.startswith("flask_alerting"):
                return None
            return node.module.removeprefix("flask_alerting").lstrip(".")
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        return ".".join([*base, *([node.module] if node.module else [])])

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.ImportFrom):
                target = resolve(node)
                if target is None:
                    continue
                for alias in node.names:  # `from . import _lifecycle` names a module
                    candidate = f"{target}.{alias.name}".lstrip(".")
                    sub = PACKAGE.joinpath(*candidate.split("."))
                    is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                    found.add(candidate if is_module else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("flask_alerting"):
                        found.add(alias.name.removeprefix("flask_alerting").lstrip("."))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])
                else:
                    for stmt in ast.walk(child):
                        if isinstance(stmt, ast.stmt):
                            visit([stmt])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(module)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(path): runtime_imports(path) for path in MODULES}


@pytest.mark.parametrize("module", sorted(GRAPH), ids=lambda m: m or "__init__")
def test_imports_point_one_way(module: str) -> None:
    layer = layer_of(module)
    upward = sorted(
        f"flask_alerting.{target} ({LAYERS[layer_of(target)][0]})"
        for target in GRAPH[module]
        if layer_of(target) > layer
    )
    assert not upward, (
        f"flask_alerting.{module} ({LAYERS[layer][0]}) imports from a layer above: {upward}"
    )


def test_no_import_cycle() -> None:
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycle = " -> ".join(path[path.index(module) :] + [module])
            raise AssertionError(f"import cycle: {cycle}")
        if module in done:
            return
        for target in GRAPH.get(module, ()):
            # A package's __init__ re-exports its modules: importing one of them
            # imports the package first, which is no cycle of ours.
            if module.startswith(target + ".") or (target == "" and module):
                continue
            walk(target, [*path, module])
        done.add(module)

    for module in GRAPH:
        walk(module, [])


def test_the_checker_sees_what_it_should() -> None:
    """The graph is not empty by accident: known edges are there, type-only ones not."""
    assert "delivery.pipeline" in GRAPH["_state"] or "delivery" in GRAPH["_state"]
    assert "_lifecycle" in GRAPH["metrics.sampler"]  # `from .. import _lifecycle`
    assert "cli" in GRAPH["_extension"]
    assert "_extension" not in GRAPH["handler"]  # under TYPE_CHECKING only
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("brand_new_module")


#: What installs a process hook: ``os.register_at_fork``, ``atexit.register``,
#: ``signal.signal``, and multiprocessing's ``Finalize`` and ``register_after_fork``.
PROCESS_HOOKS = {
    "register_at_fork": {"os"},
    "register": {"atexit"},
    "signal": {"signal"},
    "Finalize": {"util"},
    "register_after_fork": {"util"},
}


def test_only_the_lifecycle_registry_installs_process_hooks() -> None:
    """Fork, exit and signal hooks go through flask_alerting._lifecycle, in its explicit
    order."""
    offenders = []
    for path in MODULES:
        if module_name(path) == "_lifecycle":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in PROCESS_HOOKS:
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name in PROCESS_HOOKS[node.attr]:
                    offenders.append(f"{module_name(path)}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and node.module in ("signal", "atexit"):
                offenders.append(f"{module_name(path)}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and node.module == "multiprocessing.util":
                offenders.append(f"{module_name(path)}:{node.lineno}")
    assert offenders == []
