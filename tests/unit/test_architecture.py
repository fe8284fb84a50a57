"""The import rules that import-linter cannot express: domain/ uses the standard library and
eventsourcing only, whatever third-party package happens to be installed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import domain

ALLOWED_THIRD_PARTY = {"eventsourcing"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_imports_only_stdlib_and_eventsourcing() -> None:
    allowed = set(sys.stdlib_module_names) | ALLOWED_THIRD_PARTY | {"domain"}
    offenders = {
        str(path.relative_to(Path(domain.__file__).parent)): sorted(imported_roots(path) - allowed)
        for path in Path(domain.__file__).parent.rglob("*.py")
    }
    assert {file: bad for file, bad in offenders.items() if bad} == {}
