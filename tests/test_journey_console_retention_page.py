"""Issue 14, retention from the console's page, in a real browser (Debian's Chromium driven
by Playwright), then the witness check.

A supervisor categorises a patrol's recording "non-evidential" and puts a legal hold on
another; 32 days later the problems page lists the deletion due, the retention page shows
it (and the held one, kept), and "Run the retention job now" deletes it. The recording's page
says it was deleted under retention, segment by segment. Then `bwv verify STORE
--witness-key W --checkpoint C`, with the witness's cosignature on the dock's latest
checkpoint, says VERIFIED and explains each deleted record (by whom, when, which custody
entry) rather than calling it withheld. Screenshot: docs/console-retention.png."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from console.testing import CHROMIUM, browser, sign_in
from dock.checkpoints import latest_checkpoint
from tests.test_journey_console_pages import DAY_US, shipped_console
from tlog.cosignature import CosignatureSigner
from tlog.note import add_signatures, split_note

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
WITNESS = CosignatureSigner("watchdog.example", SigningKey(hashlib.sha256(b"wd").digest()))

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def witness_check(root: Path, store: Path):
    """`bwv verify STORE` against the dock's latest checkpoint, cosigned by the witness."""
    cp = latest_checkpoint(store)
    assert cp is not None
    text, _ = split_note(cp.note)
    cosigned = add_signatures(cp.note, [WITNESS.cosign(text, 1_800_000_000)])
    (root / "checkpoint").write_bytes(cosigned)
    (root / "witness.vkey").write_text(WITNESS.vkey + "\n")
    args = ["verify", str(store), "--witness-key", str(root / "witness.vkey")]
    return CliRunner().invoke(main, [*args, "--checkpoint", str(root / "checkpoint")])


def categorise(page, url: str, recording_id: str, category: str) -> str:
    page.goto(f"{url}/recordings")
    ref = page.get_attribute(f'tr[data-recording="{recording_id}"] a', "href")
    page.goto(f"{url}{ref}")
    page.check(f'input[name=category][value="{category}"]')
    page.get_by_role("button", name="Save categories").click()
    assert "Categories saved" in page.locator("#done").inner_text()
    return str(ref)


def test_a_retention_deletion_run_from_the_page_is_explained_by_the_witness_check(tmp_path):
    cameras = {"cam-7": ["patrol-0900", "raid-0600"]}
    with shipped_console(tmp_path, cameras) as (c, _dock, clock):
        pw = c.add_account("sam", "supervisor")
        with c.serve() as server, browser() as page:
            url = server.url
            sign_in(page, url, "sam", pw)
            patrol = categorise(page, url, "patrol-0900", "non-evidential")
            categorise(page, url, "raid-0600", "non-evidential")
            page.fill("#hold-reason", "complaint 17: the raid")
            page.get_by_role("button", name="Set a legal hold").click()
            assert "Legal hold set" in page.locator("#done").inner_text()
            page.goto(f"{url}/retention")
            assert "No recording is due for deletion" in page.locator("#due").inner_text()

            clock.advance(32 * DAY_US)  # a month on: a new session
            sign_in(page, url, "sam", pw)
            page.goto(f"{url}/problems")
            due = page.locator("#problems-retention_due").inner_text()
            assert "patrol-0900" in due and "raid-0600" not in due  # the held one is not due

            page.goto(f"{url}/retention")
            due_row = page.locator('#due tr[data-recording="patrol-0900"]').inner_text()
            assert "non-evidential (31 days)" in due_row
            held_row = page.locator('#due tr[data-recording="raid-0600"]').inner_text()
            assert "kept: legal hold" in held_row
            page.get_by_role("button", name="Run the retention job now").click()
            done = page.locator("#job-done").inner_text()
            assert "1 recording deleted, 1 kept by a legal hold" in done
            jobs = page.locator("#jobs").inner_text()
            assert "account:sam" in jobs and "patrol-0900" in jobs
            page.screenshot(path=str(DOCS / "console-retention.png"), full_page=True)

            page.goto(f"{url}{patrol}")
            assert "deleted" in page.locator("h1").inner_text()
            assert page.locator("#segments").inner_text().count("deleted under retention") == 3
            page.goto(f"{url}/problems")
            assert page.locator("#problems-retention_due").count() == 0

        deleted = c.custody("retention_deleted")
        assert [e.actor for e in deleted] == ["account:sam"] * 3
        got = witness_check(tmp_path, c.store_dir)
    assert got.exit_code == 0, got.output
    assert "VERIFIED" in got.output and "withheld" not in got.output
    for e in deleted:
        assert (
            f"explained: device cam-7 seq {e.detail['seq']} (recording patrol-0900): deleted "
            f"under retention on 2027-01-03 06:00:00 UTC by account:sam, custody entry {e.index}"
        ) in got.output
