"""Decoding what arrives on the wire: JSON that every later step can handle.

Every surface reads request bodies and frames through `decode_json`, before
authentication and before any work. What it refuses is an `InvalidRequestError`
(HTTP 400) naming the problem:

- text that is not JSON, or bytes that are not UTF-8;
- nesting deeper than `MAX_JSON_DEPTH` (32) objects/arrays — sessiongate's own
  requests nest three levels; the limit keeps a hostile body from exhausting
  the recursion of the JSON parser and of every step after it;
- ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, though Python accepts them),
  and a number that overflows a float (``1e999`` would be infinity);
- a string (value or object key) that is not valid Unicode — a lone surrogate
  such as ``"\\ud800"`` — or that holds NUL (no store keeps it as text).

Integers are ranged by each argument's model (`tools/`; one of more than 4,300
digits is refused by the parser itself): integers beyond what
the argument allows are refused there, never passed to a store.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from sessiongate.errors import InvalidRequestError
from sessiongate.text import text_problem

__all__ = [
    "MAX_JSON_DEPTH",
    "check_json",
    "check_text",
    "decode_json",
    "dump_json",
    "dump_json_bytes",
    "load_json",
    "query_int",
]

MAX_JSON_DEPTH = 32
# 19 digits in a row may be an integer beyond 64 bits, which orjson turns into a float
_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")
_MAX_QUERY_DIGITS = 18  # below 2**63: an integer every store can hold


def _refuse_constant(name: str) -> Any:
    raise InvalidRequestError(
        f"{name} is not a JSON number", details={"problems": [f"(body): {name} is not allowed"]}
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _out_of_range(text)
    return value


def _out_of_range(text: str) -> InvalidRequestError:
    shown = text if len(text) <= 24 else f"{text[:12]}…({len(text)} characters)"
    return InvalidRequestError(
        f"the number {shown} is out of range",
        details={"problems": [f"(body): the number {shown} is out of range"]},
    )


def decode_json(data: bytes | str, what: str = "body") -> Any:
    """Parse JSON from the wire and check its depth and strings (see the module docstring)."""
    value = load_json(data, what)
    check_json(value, what, data)
    return value


def _plainly_safe(data: bytes | str) -> bool:
    """Whether the raw text cannot hold what `check_json` looks for, so the walk can be skipped.

    ASCII JSON can spell NUL or a lone surrogate only as a ``\\u`` escape (the parser
    refuses raw control characters), and cannot nest deeper than it has brackets.
    """
    if isinstance(data, str):
        brackets = data.count("{") + data.count("[")
        return data.isascii() and "\\u" not in data and brackets <= MAX_JSON_DEPTH
    brackets = data.count(b"{") + data.count(b"[")
    return data.isascii() and b"\\u" not in data and brackets <= MAX_JSON_DEPTH


def load_json(data: bytes | str, what: str = "body") -> Any:
    """Only parse (the first half of `decode_json`): not yet checked.

    orjson parses what it accepts at a fraction of the `json` module's CPU (which also
    builds a decoder per call and sniffs the encoding of bytes: ~6% of a send's CPU);
    whatever it refuses — not JSON, ``NaN``, an escaped lone surrogate, a byte-order mark,
    nesting past 1024 — is parsed again by `json`, whose answers and refusals stay the
    rule, so both give the same value or the same error. Text with 19 digits in a row goes
    to `json` directly (orjson reads an integer beyond 64 bits as a float).
    """
    long_digits = (
        _LONG_DIGITS.search(data) if isinstance(data, str) else _LONG_DIGITS_BYTES.search(data)
    )
    if long_digits is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise _too_deep(what) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"{what} is not valid JSON: {exc}", details={"hint": "send a JSON object"}
        ) from None


def dump_json(value: Any) -> str:
    """Compact JSON text for the wire or a log line, by orjson (the `json` module builds an
    encoder per call: a few percent of a turn's CPU); what orjson cannot write — a lone
    surrogate, a key that is not a string, an integer beyond 64 bits — is written by `json`."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"))


def dump_json_bytes(value: Any) -> bytes:
    """`dump_json` as UTF-8 bytes (a response body), without a round trip through `str`."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _too_deep(what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{what} nests deeper than {MAX_JSON_DEPTH} levels",
        details={"limit": MAX_JSON_DEPTH, "problems": [f"({what}): nested too deep"]},
    )


def check_json(value: Any, what: str, source: bytes | str | None = None) -> None:
    """Walk the decoded tree once, iteratively: depth and every string.

    Given the raw `source` it was decoded from, the walk is skipped when that text
    cannot hold anything the walk looks for (`_plainly_safe`).
    """
    if source is not None and _plainly_safe(source):
        return
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            check_text(node, what)
        elif isinstance(node, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep(what)
            if isinstance(node, dict):
                for key, item in node.items():
                    check_text(key, what)
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in node)


def check_text(text: str, what: str) -> None:
    """Refuse a string that is not valid Unicode (a lone surrogate) or that holds NUL."""
    problem = text_problem(text)
    if problem is not None:
        raise _bad_text(what, problem)


def _bad_text(what: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"a string in {what} {problem}", details={"problems": [f"({what}): a string {problem}"]}
    )


def query_int(value: str) -> int | str:
    """A query parameter as an int when it is plain ASCII digits, else as given
    (the argument's model then refuses it by name)."""
    if value.isascii() and value.isdigit() and len(value) <= _MAX_QUERY_DIGITS:
        return int(value)
    return value
