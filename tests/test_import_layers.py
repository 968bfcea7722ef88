"""The package's modules import each other without a circle.

Every ``import`` counts, wherever it is (module level, inside a function, under
``TYPE_CHECKING``): a circle that only type checking or a late import hides still ties the
layers together. A package's ``__init__`` that exposes its submodules' names counts too, so
submodules never import from their own package's ``__init__`` (``keen._delivery``'s modules
import ``keen._delivery._config``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import keen

PACKAGE = Path(keen.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["keen", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                targets.add(submodule if submodule in modules else node.module)
    return {t for t in targets if t in modules and t != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (as a path back to its start), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_no_import_circle_among_the_package_modules() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "keen._event" in graph and "keen.client" in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_event_is_below_the_client() -> None:
    from keen import _event, client

    assert client.Event is _event.Event is keen.Event
    modules = _modules()
    assert _imports("keen._event", modules["keen._event"], modules) <= {
        "keen.exceptions", "keen._encoding"}
