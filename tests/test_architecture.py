"""The import directions of docs/architecture.md, checked on the source (imports inside
functions included): the core never reaches up into a surface, the store knows nothing
above it, and the resolver knows nothing of who calls it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "sessiongate"

# what talks to the world: never imported by the core
SURFACES = ("server", "cli", "cli_*", "client", "mcp_bridge", "demo", "__main__")
# the gateway's own logic, below every surface
CORE = (
    "errors", "text", "wire_fields", "keys", "tool_names", "config", "policy", "lints", "wire",
    "metrics",
    "store", "audit", "paging", "resolver", "resolution", "tools", "runtime", "gateway",
    "channels", "doctor", "openclaw", "tracing",
)  # fmt: skip
BELOW_RESOLVER = ("config", "errors", "keys", "lints", "metrics", "store")
# what each layer may import from sessiongate, where narrower than "anything in the core"
ONLY = {
    "store": ("store", "errors", "text", "wire_fields", "private_files", "extras"),
    "keys": ("errors",),
    "text": (),
    "wire_fields": (),
    "errors": (),
    "config": ("errors", "keys", "tool_names", "paths"),
    "paths": (),  # where state lives on disk: shared by the client and the server
    "policy": ("config", "keys", "errors"),
    "resolver": (*BELOW_RESOLVER, "audit", "policy", "resolution", "tracing"),
    # the resolver's parts (visibility, suggestions, creation): below it, beside each other
    "resolution": (*BELOW_RESOLVER, "resolution"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every sessiongate module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name == ROOT or name.startswith(ROOT + "."))
    return found


def _part(module: str) -> str:
    """The first name below the package (`sessiongate.store.sqlite` -> ``store``)."""
    return module.split(".")[1] if "." in module else ""


def _in(module: str, patterns: tuple[str, ...]) -> bool:
    part = _part(module)
    return any(part == p or (p.endswith("*") and part.startswith(p[:-1])) for p in patterns)


MODULES = {_module_name(p): _imports(p) for p in sorted((SRC / ROOT).rglob("*.py"))}
CORE_MODULES = sorted(m for m in MODULES if _in(m, CORE))


def test_the_layers_cover_what_they_name() -> None:
    assert {"sessiongate.store.sqlite", "sessiongate.resolver", "sessiongate.tools.sessions",
            "sessiongate.runtime.runs", "sessiongate.gateway"} <= set(CORE_MODULES)  # fmt: skip
    assert not any(_in(m, SURFACES) for m in CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_the_core_never_imports_a_surface_or_the_facade(module: str) -> None:
    """store, resolver, tools, runtimes (all of the core) never import server or CLI code,
    nor the package root (the public facade that imports them)."""
    upward = sorted(m for m in MODULES[module] if m == ROOT or _in(m, SURFACES))
    assert upward == [], f"{module} imports {upward}: see docs/architecture.md"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) in ONLY))
def test_each_layer_imports_only_what_is_below_it(module: str) -> None:
    allowed = ONLY[_part(module)]
    stray = sorted(m for m in MODULES[module] if not _in(m, allowed))
    assert stray == [], f"{module} may import only {allowed}, imports {stray}"
