"""The suite's own layout: shared helpers live in tests/support/, and no test module or conftest
is imported by another module (pytest loads those; importing one runs it twice under two names)."""

import ast
from pathlib import Path

TESTS = Path(__file__).parents[1]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        f"{path.relative_to(TESTS)}: {module}"
        for path in TESTS.rglob("*.py")
        for module in imported_modules(path)
        if module.startswith(("tests.", ".")) and module.split(".")[-1].startswith(("test_", "conftest"))
    }
    assert not offenders, sorted(offenders)
