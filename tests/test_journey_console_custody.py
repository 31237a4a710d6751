"""Issue 14, the custody log as the console exports it (console/custody_log.py): in full or
about one recording (its entries and its segments'), as CSV and JSON that an auditor keeps;
each export is itself a custody event naming the account."""

from __future__ import annotations

import csv
import io
import json

import pytest

from console import custody_log as cl
from console.core import AUDITOR, Account, ConsoleConfig, open_console
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from tests.test_journey_log_dock import ship_all

AUDIT = Account("audrey", frozenset({AUDITOR}))


@pytest.fixture
def console(tmp_path):
    h = DockHarness(tmp_path / "dock")
    dev = OutboxDevice(tmp_path / "cam", "cam-1")
    dev.creds = h.enroll(dev)
    for rec in ("recA", "recB"):
        for i in range(2):
            dev.add_segment(segment_bytes(2000 + i, i), recording_id=rec)
        dev.end_recording(rec)
    ship_all(h, dev)
    yield open_console(h.dock, h.store_dir, ConsoleConfig(secure_cookies=False))
    h.close()


def test_the_entries_about_one_recording_are_its_own_and_its_segments(console):
    store = console.dock.store
    seg = next(e.segment_id for e in cl.all_entries(console) if cl.recording_of(e) == "recA")
    store.log("dock", "gap_filled", console.now_us(), device_id="cam-1", segment_id=seg)
    got = cl.selected_rows(console, AUDIT, cl.CustodyFilter(recording_id="recA"))
    assert [r["action"] for r in got].count("received") == 3  # two segments and the end record
    assert "gap_filled" in [r["action"] for r in got]  # about one of its segments
    assert all(r["recording_id"] in ("recA", None) for r in got)
    assert not [r for r in got if r["recording_id"] == "recB"]


def test_csv_export_holds_every_column_and_is_a_custody_event(console):
    text, name = cl.export(console, AUDIT, cl.CustodyFilter(recording_id="recB"), "csv")
    assert name == "custody-recB.csv"
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == list(cl.COLUMNS)
    assert {r["recording_id"] for r in table} == {"recB"}
    received = [r for r in table if r["action"] == "received"]
    assert len(received) == 3
    assert json.loads(received[0]["detail"])["recording_id"] == "recB"
    assert received[0]["at_utc"].endswith(" UTC") and len(received[0]["entry_hash"]) == 64
    last = cl.all_entries(console)[-1]
    assert (last.action, last.actor) == ("custody_exported", "account:audrey")
    assert last.detail == {"format": "csv", "entries": len(table), "recording_id": "recB"}


def test_json_export_says_what_it_holds_and_who_made_it(console):
    text, name = cl.export(console, AUDIT, cl.CustodyFilter(), "json")
    doc = json.loads(text)
    assert name == "custody.json"
    head = doc["custody_log"]
    assert head["exported_by"] == "account:audrey"
    assert head["entries"] == len(doc["entries"]) == len(cl.all_entries(console)) - 1
    assert head["dock_key_id"] == console.dock.store.dock_key_id
    assert [e["index"] for e in doc["entries"]] == list(range(1, head["entries"] + 1))


def test_a_cell_that_looks_like_a_formula_is_not_run_by_a_spreadsheet(console):
    console.dock.store.log('=HYPERLINK("http://x")', "note", console.now_us())
    text, _ = cl.export(console, AUDIT, cl.CustodyFilter(), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[-1]["actor"] == '\'=HYPERLINK("http://x")'


def test_pages_of_the_log(console):
    items = list(range(120))
    assert cl.page_of(items, 1) == (items[:50], 3)
    assert cl.page_of(items, 3) == (items[100:], 3)
    assert cl.page_of(items, 99) == (items[100:], 3)
    assert cl.page_of([], 1) == ([], 1)


def test_a_full_json_export_replays_as_the_dock_signed_it(console):
    from dock.custody import verify_custody_log
    from dock.store import LogEntry

    doc = json.loads(cl.export(console, AUDIT, cl.CustodyFilter(), "json")[0])
    fields = ("index", "at_us", "actor", "action", "device_id", "segment_id", "sha256", "detail",
              "prev_hash", "entry_hash", "signature")  # fmt: skip
    entries = [LogEntry(*(e[f] for f in fields)) for e in doc["entries"]]
    assert verify_custody_log(entries, console.dock.public_key) == []
    entries[3] = LogEntry(*(doc["entries"][3][f] for f in fields[:7]), {"size": 1},
                          *(doc["entries"][3][f] for f in fields[8:]))  # fmt: skip
    assert verify_custody_log(entries, console.dock.public_key) != []
