"""The shape of the code, read from its imports (every import, in functions too):
- `services/` never imports `infra/` (the local runners stay out of the production image);
- no circle of imports among the services' modules;
- the services share nothing but events: no service imports another (common and the
  administration package excepted: `clinic` acts for each service);
- each domain core stays pure: no Flask, psycopg or Kafka in it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "triage", "referral")
IO_LIBRARIES = ("flask", "psycopg", "psycopg_pool", "kafka", "gunicorn", "requests")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules the file imports: `from x import y` is module x.y when y
    is a module, else module x."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return found


def service_modules() -> dict[str, set[str]]:
    """Module -> the modules of services/ it imports."""
    files = {module_name(p): p for p in (ROOT / "services").rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in files and m != name} for name, path in files.items()}


def test_services_never_import_infra():
    offenders = {name: sorted(m for m in imported_modules(path) if m == "infra" or m.startswith("infra."))
                 for path in (ROOT / "services").rglob("*.py") if (name := module_name(path))}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_no_circle_of_imports_among_the_services_modules():
    graph = service_modules()
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = tuple(f"services.{other}" for other in SERVICES if other != service)
    graph = service_modules()
    crossing = {name: sorted(m for m in imports if m.startswith(others))
                for name, imports in graph.items() if name.startswith(f"services.{service}")}
    assert {name: mods for name, mods in crossing.items() if mods} == {}


@pytest.mark.parametrize("service", ("triage", "referral"))
def test_the_domain_core_does_no_io(service):
    domain = ROOT / "services" / service / "domain"
    impure = {module_name(p): sorted(m for m in imported_modules(p) if m.split(".")[0] in IO_LIBRARIES)
              for p in domain.rglob("*.py")}
    assert domain.is_dir() and impure and {name: mods for name, mods in impure.items() if mods} == {}


def test_common_plumbing_imports_no_service_nor_the_administration_package():
    above = tuple(f"services.{name}" for name in (*SERVICES, "admin"))
    upward = {name: sorted(m for m in imports if m.startswith(above))
              for name, imports in service_modules().items() if name.startswith("services.common")}
    assert upward and {name: mods for name, mods in upward.items() if mods} == {}
