"""The page's own CSS, JavaScript and icon: package data served under a content hash."""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["asset_url", "serve_asset"]

IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    hashed_name: str


@functools.cache
def _assets() -> dict[str, Asset]:
    """Every file of static/, by name, with its content-hashed name."""
    found: dict[str, Asset] = {}
    for entry in files("sessiongate.server.ui").joinpath("static").iterdir():
        body = entry.read_bytes()
        stem, dot, ext = entry.name.rpartition(".")
        digest = hashlib.sha256(body).hexdigest()[:12]
        media_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        found[entry.name] = Asset(body, media_type, f"{stem}.{digest}{dot}{ext}")
    return found


@functools.cache
def _by_hashed_name() -> dict[str, Asset]:
    return {asset.hashed_name: asset for asset in _assets().values()}


def asset_url(name: str) -> str:
    """The URL of a static file; it changes whenever the file does, so it can be cached."""
    return f"/ui/static/{_assets()[name].hashed_name}"


async def serve_asset(request: Request) -> Response:
    asset = _by_hashed_name().get(request.path_params["name"])
    if asset is None:
        raise HTTPException(404, "no such asset (asset URLs change with their content)")
    return Response(asset.body, media_type=asset.media_type, headers={"cache-control": IMMUTABLE})
