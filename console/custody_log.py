"""The custody log as the console shows and exports it (``/custody``, ``/custody.csv``,
``/custody.json``): in full or about one recording (its entries and its segments'), a page at
a time, each row as the account may read it (the firewall: rows about a recording it may not
see are redacted by ``console.catalog.Catalog.redact_entry``; a redacted row carries no hash,
since a hash of a short detail can be guessed back).

Exports are documents an auditor keeps: the JSON one says what it holds (the filter, who
exported it and when, how many rows were redacted); both hold every column of the entry."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from console.core import Account, Console
from crypto.verify.timecheck import utc
from dock.store import LogEntry

COLUMNS = (
    "index",
    "at_utc",
    "at_us",
    "actor",
    "action",
    "device_id",
    "segment_id",
    "recording_id",
    "sha256",
    "detail",
    "redacted",
    "prev_hash",
    "entry_hash",
    "signature",
)
PER_PAGE = 50
EXPORT_ACTION = "custody_exported"  # a custody event: who exported what (docs/spec-parts/D14.md)


@dataclass(frozen=True)
class CustodyFilter:
    recording_id: str | None = None
    device_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"recording_id": self.recording_id, "device_id": self.device_id}

    @property
    def empty(self) -> bool:
        return self.recording_id is None and self.device_id is None


def all_entries(console: Console) -> list[LogEntry]:
    """Every custody entry, in order."""
    store = console.dock.store
    out: list[LogEntry] = []
    after = 0
    while batch := store.custody_log(after=after, limit=1000):
        out += batch
        after = batch[-1].index
    return out


def recording_of(e: LogEntry) -> str | None:
    rec = e.detail.get("recording_id") if isinstance(e.detail, dict) else None
    return rec if isinstance(rec, str) else None


def selected(rows_: Iterable[dict[str, Any]], f: CustodyFilter) -> list[dict[str, Any]]:
    """The rows ``f`` asks for: about the recording (naming it, or one of its segments),
    and/or about the camera. Rows are filtered as the account reads them: a redacted row
    names no camera, so a search by camera never finds a restricted recording's entries."""
    out = list(rows_)
    if f.device_id is not None:
        out = [r for r in out if r["device_id"] == f.device_id]
    if f.recording_id is None:
        return out
    segments = {
        (r["device_id"], r["segment_id"])
        for r in out
        if r["segment_id"] and r["recording_id"] == f.recording_id
    }
    return [
        r
        for r in out
        if r["recording_id"] == f.recording_id or (r["device_id"], r["segment_id"]) in segments
    ]


def _redactor(console: Console, account: Account) -> Callable[[LogEntry], dict[str, Any]]:
    try:
        from console.catalog import Catalog
    except ImportError:  # pragma: no cover - the catalog lands with the firewall
        return _plain
    return Catalog(console).redactor(account)


def _plain(e: LogEntry) -> dict[str, Any]:
    d = e.body()
    d["entry_hash"], d["signature"] = e.entry_hash, e.signature
    return d


def row_of(e: LogEntry, seen: dict[str, Any]) -> dict[str, Any]:
    """One row: ``seen`` is the entry as the account may read it (redacted or whole)."""
    detail = seen.get("detail")
    rec = detail.get("recording_id") if isinstance(detail, dict) else None
    redacted = bool(seen.get("redacted")) or (
        seen.get("detail") != e.detail
        or seen.get("device_id") != e.device_id
        or seen.get("segment_id") != e.segment_id
        or seen.get("sha256") != e.sha256
    )
    row = {
        "index": e.index,
        "at_utc": utc(e.at_us) + " UTC",
        "at_us": e.at_us,
        "actor": _actor(seen.get("actor", e.actor), redacted),
        "action": seen.get("action", e.action),
        "device_id": seen.get("device_id"),
        "segment_id": seen.get("segment_id"),
        "recording_id": rec if isinstance(rec, str) else recording_of(e),
        "sha256": seen.get("sha256"),
        "detail": detail if isinstance(detail, dict) else {},
        "redacted": bool(redacted),
        "prev_hash": None if redacted else e.prev_hash,
        "entry_hash": None if redacted else e.entry_hash,
        "signature": None if redacted else e.signature,
    }
    return row


def _actor(actor: str, redacted: bool) -> str:
    """A camera as the actor would name the restricted recording's camera: "a camera"."""
    return "device (restricted)" if redacted and actor.startswith("device:") else actor


def rows(console: Console, account: Account, entries: Iterable[LogEntry]) -> list[dict[str, Any]]:
    """The entries as ``account`` may read them."""
    redact = _redactor(console, account)
    return [row_of(e, redact(e)) for e in entries]


def selected_rows(console: Console, account: Account, f: CustodyFilter) -> list[dict[str, Any]]:
    """The log's rows ``f`` asks for, as ``account`` may read them."""
    return selected(rows(console, account, all_entries(console)), f)


def page_of(items: list[Any], page: int, per_page: int = PER_PAGE) -> tuple[list[Any], int]:
    """Page ``page`` (1-based; the newest entries last, as the log runs) and the page count."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(1, page), pages)
    return items[(page - 1) * per_page : page * per_page], pages


def detail_text(detail: dict[str, Any]) -> str:
    """A detail as one line (``key=value; ...``), for the page and the CSV."""
    parts = []
    for k in sorted(detail):
        v = detail[k]
        text = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        parts.append(f"{k}={text}")
    return "; ".join(parts)


def to_csv(rows_: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for r in rows_:
        out = []
        for c in COLUMNS:
            v = r.get(c)
            if c == "detail":
                v = json.dumps(v, sort_keys=True)
            elif isinstance(v, bool):
                v = "yes" if v else "no"
            out.append(_cell("" if v is None else str(v)))
        w.writerow(out)
    return buf.getvalue()


def _cell(v: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def to_json(
    rows_: list[dict[str, Any]], f: CustodyFilter, account: Account, now_us: int, dock_key_id: str
) -> str:
    doc = {
        "custody_log": {
            "dock_key_id": dock_key_id,
            "filter": f.to_json(),
            "exported_by": account.actor,
            "exported_at_us": now_us,
            "exported_at_utc": utc(now_us) + " UTC",
            "entries": len(rows_),
            "redacted": sum(1 for r in rows_ if r["redacted"]),
        },
        "entries": rows_,
    }
    return json.dumps(doc, indent=2, sort_keys=True)


def export(console: Console, account: Account, f: CustodyFilter, fmt: str) -> tuple[str, str]:
    """The export (``fmt`` "csv" or "json") and its file name; written to the custody log
    first (``custody_exported``: format, filter, entries)."""
    got = selected_rows(console, account, f)
    console.custody(
        account,
        EXPORT_ACTION,
        recording_id=f.recording_id,
        device_id=f.device_id,
        detail={"format": fmt, "entries": len(got)},
    )
    now = console.now_us()
    parts = ["custody", *(x for x in (f.recording_id, f.device_id) if x)]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))
    if fmt == "csv":
        return to_csv(got), f"{stem}.csv"
    return to_json(got, f, account, now, console.dock.store.dock_key_id), f"{stem}.json"
