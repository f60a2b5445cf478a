"""Optional integrations live in extras; importing one that is missing names the extra.

``sessiongate[postgres]`` (asyncpg) and ``sessiongate[llm]`` (openai) are
imported only by the code paths that use them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from sessiongate.errors import MissingExtraError

__all__ = ["check_extra", "require_extra"]


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
