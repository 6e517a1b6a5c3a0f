"""The tree's shape: server/ grouped by concern, unique module names, package maps, few `Any`.

Import direction is checked by `lint-imports` (`make lint`); these are the rules it cannot see.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "graphs", "agents", "tools", "prompts")
MAX_ANY_LINES = 40
MAX_SERVER_TOP_MODULES = 8


def _modules() -> list[Path]:
    found: list[Path] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.relative_to(ROOT).parts:
                found.append(path)
    return found


def _any_lines(path: Path) -> tuple[list[int], list[int]]:
    """Lines naming `Any` anywhere (as `grep -w` counts them), and those naming it in code
    outside an import statement."""
    source = path.read_text()
    named = [n for n, line in enumerate(source.splitlines(), 1) if re.search(r"\bAny\b", line)]
    imports = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom | ast.Import):
            imports.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    in_code = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.NAME and token.string == "Any"
    }
    return named, sorted(in_code - imports)


def test_server_has_few_top_level_modules() -> None:
    top = sorted(p.name for p in (ROOT / "server").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_SERVER_TOP_MODULES, top


def test_module_names_are_unique_across_packages() -> None:
    seen: dict[str, Path] = {}
    clashes = []
    for path in _modules():
        if path.name == "__init__.py":
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} / {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert clashes == []


def test_every_server_package_maps_its_modules() -> None:
    missing = []
    for init in sorted((ROOT / "server").rglob("__init__.py")):
        package = init.parent
        if "migrations" in package.relative_to(ROOT).parts:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        members = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
        members += [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
        if package.name == "db":
            members.append("migrations/")
        missing += [f"{package.relative_to(ROOT)}: {m}" for m in members if m not in doc]
    assert missing == []


def test_any_is_rare_and_explained() -> None:
    total = 0
    unexplained = []
    for path in _modules():
        named, in_code = _any_lines(path)
        total += len(named)
        lines = path.read_text().splitlines()
        for n in in_code:
            here, above = lines[n - 1], lines[n - 2] if n > 1 else ""
            if "# Any:" not in here and not above.strip().startswith("# Any:"):
                unexplained.append(f"{path.relative_to(ROOT)}:{n}")
    assert unexplained == []
    assert total <= MAX_ANY_LINES
