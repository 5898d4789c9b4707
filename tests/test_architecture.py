"""The layers of docs/architecture.rst hold in the code: every import points down, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "flask_gridauth"

#: Each module's layer; a module may import its own layer or a lower one, never a higher one.
CORE, STORAGE, CREDENTIALS, SERVICE, EXTENSION, WEB = range(6)
LAYERS: dict[str, int] = {
    # core: Flask-free or nearly (records, formats, rules, names), and the client that imports only these
    **dict.fromkeys(
        [
            "errors", "records", "keys", "wire", "client", "config", "signals", "context", "scopes",
            "principal", "schema", "schema_fields", "schema_table", "keyfetch", "activity", "responses", "strict_json",
            "bounded_cache",
        ],
        CORE,
    ),
    # storage: the complete interface, the registry, one module per backend, the contract suite
    "storage": STORAGE,
    "testing": STORAGE,
    # (their packages place these too; named so a reader finds each split module's layer here)
    **dict.fromkeys(
        [
            "storage.wrapping", "storage.values", "storage.sql", "storage.sql_records", "storage.sql_activity",
            "storage.sqlite_connections", "storage.postgres_connections",
            "storage.postgres_changes", "storage.redis_sessions", "storage.redis_restarts",
            "testing.factories", "testing.key_contract", "testing.concurrency_contract", "testing.quota_contract",
            "testing.session_contract", "testing.activity_contract",
        ],
        STORAGE,
    ),
    "memory_counters": STORAGE,
    # credentials and limits: turn a request into a principal, and count it
    "credentials": CREDENTIALS,
    "keypolicy": CREDENTIALS,
    "ratelimit": CREDENTIALS,
    "ratelimit_items": CREDENTIALS,
    "ratelimit_counting": CREDENTIALS,
    "ratelimit_leases": CREDENTIALS,
    "failed_auth": CREDENTIALS,
    "owner_limits": CREDENTIALS,
    "counters": CREDENTIALS,
    "limiter": CREDENTIALS,
    # service: the one place keys change, and what it records
    **dict.fromkeys(
        ["management", "management_owners", "grants", "rotation", "ceilings", "audit", "usage", "metrics"], SERVICE
    ),
    # the extension: per-app state and the request hook
    **dict.fromkeys(["state", "state_config", "route_requirements", "extension"], EXTENSION),
    # web: translate HTTP, HTML and the shell into service calls
    **dict.fromkeys(
        [
            "blueprint", "activity_routes", "leaks", "secret_scanning", "openapi", "cursors", "dashboard",
            "metrics_route",
            "dashboard.pages", "dashboard.sign_in_views", "dashboard.key_views", "dashboard.usage_views",
            "dashboard.audit_views", "dashboard.chart",
            "cli", "cli_audit", "cli_common", "cli_keygen", "cli_owner_limit",
        ],
        WEB,
    ),
}  # fmt: skip


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    """The layer of ``flask_gridauth.a.b``: the entry for ``a.b`` or, failing that, for ``a``."""
    parts = module.split(".")[1:]
    while parts:
        layer = LAYERS.get(".".join(parts))
        if layer is not None:
            return layer
        parts.pop()
    return None  # the package itself: re-exports only


def _imports(path: Path) -> set[str]:
    """Modules of the package ``path`` imports, lazy (function-level) imports included."""
    module = _module(path)
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found.update(n for n in [target, *names] if n.startswith("flask_gridauth") and _exists(n))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("flask_gridauth") and _exists(a.name))
    found.discard(module)
    return found


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    """A new module is placed in a layer here (and in docs/architecture.rst) before it lands."""
    unplaced = [m for m in _graph() if m != "flask_gridauth" and _layer(m) is None]
    assert unplaced == []


def test_imports_point_down() -> None:
    """No module imports one of a higher layer: web -> extension -> service -> credentials -> storage -> core."""
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module != "flask_gridauth"  # the package's __init__ re-exports every layer's names
        for target in targets
        if target != "flask_gridauth" and (_layer(target) or 0) > (_layer(module) or 0)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    """No two modules import each other, directly or through others (lazy imports count too)."""
    graph = {m: {t for t in targets if t != "flask_gridauth"} for m, targets in _graph().items()}
    cycles: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The import scan finds a lazy import inside a function, so the layer test above can fail."""
    probe = PACKAGE / "records.py"
    assert "flask_gridauth.errors" in _imports(probe)
    assert _layer("flask_gridauth.storage.redis") == STORAGE and _layer("flask_gridauth.dashboard.views") == WEB
