"""The tests mirror the package: every module imface/a/b.py has tests/a/test_b.py (imface/x.py:
tests/test_x.py), or a line in ALLOWED below saying where it is tested instead.

A module that defines no function or class (constants, a package's re-exports) needs none; a
package's ``__init__.py`` that does maps to tests/<package>/test_<package>.py. ``__main__.py`` is
the entry point.
Tests that cover several modules at once (end to end, fuzz, slow runs) may sit beside the
mirrored files under any name.
"""
from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imface"

#: Modules (or fnmatch patterns, relative to the repository root) without a mirrored test file,
#: each with the reason. Keep it short; a line whose modules all have tests must go
#: (test_the_allowlist_has_no_stale_lines says so).
ALLOWED: dict[str, str] = {
    "imface/cli/*.py": "the verbs are thin: each is run through the typer app by its library module's tests "
                       "and tests/cli/ (the vocabulary, every verb's --help)",
    "imface/benchmark/analysis.py": "run by tests/benchmark/test_run.py's tiny end-to-end benchmark",
    "imface/benchmark/curves.py": "run by tests/benchmark/test_run.py's tiny end-to-end benchmark",
    "imface/benchmark/figures.py": "run by tests/benchmark/test_run.py's tiny end-to-end benchmark",
    "imface/benchmark/parallel.py": "run by tests/benchmark/test_validation.py (a process pool: same numbers)",
    "imface/demo.py": "`make demo` (about 11 minutes); its figure helper is tested in tests/fitting/test_preview.py",
    "imface/fields/global_field.py": "the no-blend field, tested against the blend field it replaces: tests/fields/test_blend.py",
    "imface/fields/reference.py": "the loop reference itself, which tests/fields/test_blend.py and tests/test_model.py "
                                  "compare the batched model with",
}


def mirrored_test(module: Path) -> Path:
    """tests/<same folders>/test_<name>.py for imface/<folders>/<name>.py; a package's __init__.py
    maps to tests/<package folders>/test_<package>.py."""
    relative = module.relative_to(PACKAGE)
    if module.name == "__init__.py":
        return ROOT / "tests" / relative.parent / f"test_{module.parent.name}.py"
    return ROOT / "tests" / relative.parent / f"test_{module.name}"


def _defines_code(module: Path) -> bool:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def modules() -> list[Path]:
    """Every module that needs a test file (see the module docstring)."""
    found = []
    for module in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in module.parts or module.name == "__main__.py":
            continue
        if not _defines_code(module):
            continue
        found.append(module)
    return found


def _allowed(module: Path) -> bool:
    name = module.relative_to(ROOT).as_posix()
    return any(fnmatch.fnmatch(name, pattern) for pattern in ALLOWED)


def test_the_mirror_rule():
    assert mirrored_test(PACKAGE / "ops" / "crop.py") == ROOT / "tests" / "ops" / "test_crop.py"
    assert mirrored_test(PACKAGE / "frame.py") == ROOT / "tests" / "test_frame.py"
    assert mirrored_test(PACKAGE / "__init__.py") == ROOT / "tests" / "test_imface.py"
    assert mirrored_test(PACKAGE / "config" / "__init__.py") == ROOT / "tests" / "config" / "test_config.py"
    assert PACKAGE / "ops" / "crop.py" in modules() and PACKAGE / "__main__.py" not in modules()


def test_every_module_has_a_mirrored_test_file():
    missing = [m for m in modules() if not mirrored_test(m).is_file() and not _allowed(m)]
    lines = [f"{m.relative_to(ROOT)} -> {mirrored_test(m).relative_to(ROOT)}" for m in missing]
    assert not missing, "modules without their test file (write it, or add a reason to ALLOWED):\n" + "\n".join(lines)


def test_the_allowlist_has_no_stale_lines():
    stale = []
    for pattern in ALLOWED:
        matched = [m for m in modules() if fnmatch.fnmatch(m.relative_to(ROOT).as_posix(), pattern)]
        if not matched or all(mirrored_test(m).is_file() for m in matched):
            stale.append(pattern)
    assert not stale, f"ALLOWED lines that match no module without a test file: {stale}"
