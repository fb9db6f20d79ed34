"""Imports point only downward: every ``imface`` import (module level and inside functions) goes to
a lower layer, or stays inside its own sub-package without a loop."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imface"

#: The layers, bottom first. A module may import from an earlier layer or from its own unit
#: (the same sub-package, or itself); never from a later layer or a sibling unit of its layer.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "version"),
    ("weights",),
    ("frame", "threads", "devices"),
    ("io",),
    ("ops",),
    ("config",),
    ("contracts",),
    ("components",),
    ("fields",),
    ("losses", "model"),
    ("pretrained",),
    ("builtin",),
    ("preprocess",),
    ("dataset",),
    ("baselines",),
    ("training",),
    ("generate",),
    ("fitting",),
    ("correspondence",),
    ("eval",),
    ("benchmark",),
    ("demo",),
    ("viewer",),
    ("cli",),
    ("__main__",),
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The imface modules ``name`` imports anywhere in its file (``TYPE_CHECKING`` blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules and "." in candidate:
                candidate = candidate.rpartition(".")[0]
            if candidate in modules and candidate != name and candidate.startswith("imface."):
                targets.add(candidate)
                break
    return targets


def _unit(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items() if name != "imface"}


def test_every_unit_has_a_layer():
    units = {_unit(name) for name in _graph()}
    assert units - set(RANK) == set(), "add new sub-packages/modules to LAYERS"


def test_imports_only_point_down():
    wrong = []
    for name, targets in _graph().items():
        for target in targets:
            source_unit, target_unit = _unit(name), _unit(target)
            if source_unit == target_unit:
                continue
            if RANK[target_unit] >= RANK[source_unit]:
                wrong.append(f"{name} -> {target} (layer {RANK[source_unit]} -> {RANK[target_unit]})")
    assert wrong == [], "upward or sideways imports:\n" + "\n".join(sorted(wrong))


def test_no_import_loops():
    graph = _graph()
    loops, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                loops.append(" -> ".join(stack[stack.index(target):] + [node, target]) if target in stack
                             else f"{node} -> {target}")
            elif target not in state:
                visit(target, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert loops == [], "import loops:\n" + "\n".join(loops)


def test_the_checker_sees_upward_and_function_level_imports(tmp_path, monkeypatch):
    """The walk itself: an import inside a function counts, and a relative import resolves."""
    modules = {"imface.ops.a": tmp_path / "a.py", "imface.cli.main": tmp_path / "m.py", "imface.ops.b": tmp_path / "b.py"}
    (tmp_path / "a.py").write_text("def f():\n    from imface.cli.main import x\n")
    (tmp_path / "b.py").write_text("from .a import f\n")
    assert _imports("imface.ops.a", modules["imface.ops.a"], modules) == {"imface.cli.main"}
    assert _imports("imface.ops.b", modules["imface.ops.b"], modules) == {"imface.ops.a"}


@pytest.mark.parametrize("entry", ["imface.pretrained", "imface.model"])
def test_loading_a_model_imports_no_training_or_data_code(entry):
    banned = ("imface.engine", "imface.training", "imface.data", "imface.builtin", "imface.preprocess",
              "imface.dataset", "imface.fitting")
    code = (f"import sys, {entry}; "
            f"print(sorted(m for m in sys.modules if m.startswith({banned!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_imports_inside_functions_say_why():
    """An import inside a function is an exception (keeping `imface --help` fast, a heavy optional
    library): each such block carries a comment, on its lines or the line before, saying why."""
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().split("\n")
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            imports = sorted((n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))),
                             key=lambda n: n.lineno)
            blocks: list[list[ast.stmt]] = []
            for node in imports:
                if blocks and node.lineno - blocks[-1][-1].end_lineno <= 2:
                    blocks[-1].append(node)
                else:
                    blocks.append([node])
            for block in blocks:
                text = lines[block[0].lineno - 2: block[-1].end_lineno]  # the line before and the block
                if not any("#" in line for line in text):
                    silent.append(f"{path.relative_to(PACKAGE.parent)}:{block[0].lineno}")
    assert silent == [], "imports inside functions without a reason:\n" + "\n".join(silent)
