"""mkdocs hooks: the site's home page is README.md and its changelog CHANGELOG.md, both
kept at the repository root where GitHub-style readers expect them.

Links are written for the repository (README links ``docs/mcp.md``, a page under docs/
links ``../deploy/Containerfile``). On the site a link into docs/ points at its page;
a link to anything else in the repository (a folder too) becomes the path in code (the
site has no repository to point into), so ``mkdocs build --strict`` still fails on a broken link.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def on_files(files: Files, config: Any) -> Files:
    for page, source in GENERATED.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=text))
    return files


def _rewrite(match: re.Match[str], base: str, folder: str) -> str:
    """`base`: the repository folder the link is relative to; `folder`: the page's under docs/."""
    bang, text, target = match.groups()
    if re.match(r"^[a-z]+:|^#", target):  # a URL or an anchor on the same page
        return match.group(0)
    path, _, anchor = target.partition("#")
    in_repo = posixpath.normpath(posixpath.join(base, path))
    if in_repo == "CHANGELOG.md":
        in_repo = "docs/changelog.md"
    if in_repo.startswith("docs/") and not (ROOT / in_repo).is_dir():
        page = posixpath.relpath(in_repo, folder)
        return f"{bang}[{text}]({page}{'#' + anchor if anchor else ''})"
    if in_repo.strip("`") in text:  # the text already names the file
        return text
    return f"{text} (`{in_repo}`)"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    src = page.file.src_uri
    # where the page's links are relative to, as a folder in the repository
    folder = posixpath.join("docs", posixpath.dirname(src)).rstrip("/")
    base = "." if src in GENERATED else folder
    return LINK.sub(lambda m: _rewrite(m, base, folder), markdown)
