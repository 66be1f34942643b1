"""Dependencies run one way: the tasks call the services, never the other way round (not even
through an import inside a function, which would hide an import loop)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_services_never_import_the_tasks():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n == "training.tasks" or n.startswith("training.tasks."))
        for path in sorted((ROOT / "training" / "services").glob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}
