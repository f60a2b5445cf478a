"""Optional integrations live in extras; importing one that is missing names the extra.

``sessiongate[postgres]`` (asyncpg) and ``sessiongate[llm]`` (openai) are
imported only by the code paths that use them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING

from sessiongate.errors import MissingExtraError

if TYPE_CHECKING:
    from sessiongate.config import SessionGateConfig

__all__ = ["check_extra", "check_extras", "require_extra"]


def require_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise _missing(module, extra, purpose, exc.name) from None


def check_extra(module: str, extra: str, purpose: str) -> None:
    """Refuse as `require_extra` does when `module` is not installed, without importing it
    (the `openai` SDK alone is ~20 MiB of an idle gateway; it is imported at first use)."""
    if importlib.util.find_spec(module) is None:
        raise _missing(module, extra, purpose, module)


def _missing(module: str, extra: str, purpose: str, missing: str | None) -> MissingExtraError:
    return MissingExtraError(
        f"{purpose} needs the '{extra}' extra: pip install 'sessiongate[{extra}]'",
        details={"extra": extra, "module": missing or module},
    )


def _needed(config: SessionGateConfig) -> list[tuple[str, str, str]]:
    """(module, extra, what needs it) for every optional integration `config` uses."""
    needed = []
    if config.storage_url.startswith(("postgresql://", "postgres://")):
        needed.append(("asyncpg", "postgres", "storage.url postgresql://…"))
    if config.tracing.otlp_endpoint:
        needed.append(("opentelemetry.sdk", "otel", "tracing.otlpEndpoint"))
    for agent in config.agents.entries:
        model = config.model_of(agent)
        if model not in ("echo", "webhook"):
            needed.append(("openai", "llm", f"agent {agent.id!r} (model {model!r})"))
            break
    return needed


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def check_extras(config: SessionGateConfig) -> None:
    """MissingExtraError naming every extra `config` needs that is not installed (found
    without importing them: validating a config stays fast)."""
    missing = [n for n in _needed(config) if not _installed(n[0])]
    if not missing:
        return
    extras = sorted({extra for _, extra, _ in missing})
    lines = [f"- {purpose} needs the '{extra}' extra" for _, extra, purpose in missing]
    install = f"pip install 'sessiongate[{','.join(extras)}]'"
    raise MissingExtraError(
        "this config needs extras that are not installed:\n" + "\n".join(lines),
        details={"extras": extras, "hint": install},
    )
