"""Optional integrations live in extras; importing one that is missing names the extra.

``sessiongate[postgres]`` (asyncpg) and ``sessiongate[llm]`` (openai) are
imported only by the code paths that use them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sessiongate.errors import MissingExtraError

__all__ = ["require_extra"]


def require_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            f"{purpose} needs the '{extra}' extra: pip install 'sessiongate[{extra}]'",
            details={"extra": extra, "module": exc.name or module},
        ) from None
