"""Canonical encoding of signed records: a strict subset of JSON (and of RFC 8785, JCS).

``encode(value)`` gives the one byte string a value has; ``decode(data)`` reads such bytes
back and refuses anything that is not exactly what ``encode`` would produce, so a verifier
never accepts two spellings of one record. The rules, byte for byte, are in crypto/FORMAT.md
("Canonical encoding"):

- values: objects (string keys), arrays, strings, integers in [-(2**53 - 1), 2**53 - 1],
  ``true``, ``false``, ``null``; ``bytes`` are written as lowercase hex strings (they read
  back as strings). Floats, NaN and infinities are refused.
- no whitespace; object members sorted by key (UTF-16 code units, as RFC 8785 says, which
  for ASCII keys is plain byte order); no duplicate keys;
- strings in UTF-8; escaped are only ``"`` and ``\\`` (as ``\\"`` and ``\\\\``) and the
  controls U+0000..U+001F (``\\b \\t \\n \\f \\r`` short forms, others ``\\u00xx``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_INT = 2**53 - 1  # safe in every JSON implementation (JavaScript's Number included)
MAX_DEPTH = 32

_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}


class CanonicalError(ValueError):
    """A value that has no canonical encoding, or bytes that are not canonical.

    ``incomplete`` is True when the bytes are the start of a JSON text that was cut off
    (what a torn write leaves)."""

    def __init__(self, message: str, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value``."""
    out: list[str] = []
    _encode(value, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalError("string is not valid Unicode (lone surrogate)") from None


def _encode(v: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CanonicalError(f"nested deeper than {MAX_DEPTH} levels")
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        if not -MAX_INT <= v <= MAX_INT:
            raise CanonicalError(f"integer out of range (|n| must be <= 2**53 - 1): {v}")
        out.append(str(int(v)))
    elif isinstance(v, float):
        raise CanonicalError("floats are not allowed in signed records (use integers)")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, bytes | bytearray | memoryview):
        out.append('"' + bytes(v).hex() + '"')
    elif isinstance(v, Mapping):
        keys = list(v.keys())
        for k in keys:
            if not isinstance(k, str):
                raise CanonicalError(f"object keys must be strings, not {type(k).__name__}")
        out.append("{")
        for i, k in enumerate(sorted(keys, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _encode(v[k], out, depth + 1)
        out.append("}")
    elif isinstance(v, Sequence):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise CanonicalError(f"type {type(v).__name__} has no canonical encoding")


def _utf16_key(k: str) -> bytes:
    try:
        return k.encode("utf-16-be")
    except UnicodeEncodeError:
        raise CanonicalError("object key is not valid Unicode (lone surrogate)") from None


_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch == '"':
        return '\\"'
    if ch == "\\":
        return "\\\\"
    c = ord(ch)
    return _SHORT.get(c, f"\\u{c:04x}")


def _string(s: str) -> str:
    return '"' + _ESCAPE.sub(_escape, s) + '"'


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise CanonicalError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _no_float(s: str) -> Any:
    raise CanonicalError("floats are not allowed in signed records")


def _no_constant(s: str) -> Any:
    raise CanonicalError(f"{s} is not allowed in signed records")


def decode(data: bytes) -> Any:
    """Parse canonical bytes; ``CanonicalError`` unless ``encode(result) == data``."""
    try:
        text = bytes(data).decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except CanonicalError:
        raise
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text) or exc.msg.startswith("Unterminated string")
        raise CanonicalError(f"not JSON: {exc.msg}", incomplete=cut) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CanonicalError(f"not JSON: {type(exc).__name__}") from None
    if not _plainly_canonical(value, text) and encode(value) != bytes(data):
        raise CanonicalError("JSON, but not in canonical form")
    return value


def _plainly_canonical(value: Any, text: str) -> bool:
    """True if ``text``, all ASCII, is the canonical form of ``value`` (parsed from it), by
    the C JSON encoder: for ASCII text, code point order is UTF-16 order, and the encoder
    escapes exactly the characters the canonical form does, with the same spellings. False
    when that cannot be told so (non-ASCII text, an integer out of range, nesting too deep):
    ``encode`` decides, and says what is wrong."""
    if not text.isascii():
        return False
    spelled = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return spelled == text and _in_bounds(value)


def _in_bounds(value: Any) -> bool:
    """Integers in range and nesting within ``MAX_DEPTH`` (what the C encoder does not
    check), for a value ``json.loads`` made (dicts, lists, str, int, bool, None)."""
    todo = [(value, 0)]
    while todo:
        v, depth = todo.pop()
        if depth > MAX_DEPTH:
            return False
        children: Iterable[Any]
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            if type(v) is int and not -MAX_INT <= v <= MAX_INT:
                return False
            continue
        for child in children:
            if type(child) is str and depth < MAX_DEPTH:
                continue  # the most common leaf, within bounds
            todo.append((child, depth + 1))
    return True
