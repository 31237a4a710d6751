"""Issue 14, the firewall for sensitive recordings, in a real browser (Debian's Chromium
driven by Playwright; JavaScript off: every page here reads and works without it).

A supervisor marks a raid's recording sensitive ("victim present"). An investigator without
a grant sees it in the list as its id and times only, a search by its camera does not find
it, its page is refused and so is an export; an auditor finds the refusals in the custody
log, with the restricted rows redacted. The supervisor grants the investigator access, with
a reason: now they see it and download its exhibit. Lifting the mark takes two supervisors:
the one who asks cannot approve. Screenshots: docs/console-recording.png,
docs/console-recordings.png, docs/console-custody.png."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from console.testing import CHROMIUM, browser, sign_in
from tests.test_journey_console_pages import shipped_console

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def sign_out(page) -> None:
    page.click("form.who button[type=submit]")
    page.wait_for_load_state()


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_a_sensitive_recording_behind_the_firewall(tmp_path):
    cameras = {"cam-7": ["raid-0600", "patrol-0900"], "cam-8": ["walk-1100"]}
    with shipped_console(tmp_path, cameras) as (c, _dock, _clock):
        pw = {
            "sam": c.add_account("sam", "supervisor", devices=("cam-7",)),
            "sue": c.add_account("sue", "supervisor"),
            "ivan": c.add_account("ivan", "investigator"),
            "ada": c.add_account("ada", "auditor"),
        }
        with c.serve() as server, browser(javascript=False) as page:
            url = server.url

            # the supervisor marks the raid's recording sensitive
            sign_in(page, url, "sam", pw["sam"])
            page.goto(f"{url}/recordings")
            ref = page.get_attribute('tr[data-recording="raid-0600"] a', "href")
            assert ref and "cam-7" not in ref  # a link never names the camera
            page.click('tr[data-recording="raid-0600"] a')
            assert "recorded between" in text_of(page, "#times")
            page.fill("#sensitive-reason", "victim present")
            page.get_by_role("button", name="Mark sensitive").click()
            assert "Marked sensitive" in text_of(page, "#done")
            assert "victim present" in text_of(page, "#sensitive")
            page.screenshot(path=str(DOCS / "console-recording.png"))
            sign_out(page)

            # an investigator without a grant: id and times only, nowhere more
            sign_in(page, url, "ivan", pw["ivan"])
            page.goto(f"{url}/recordings")
            row = page.locator('tr[data-recording="raid-0600"]')
            assert "restricted" in row.inner_text()
            assert "recorded between" in row.inner_text()
            assert "cam-7" not in row.inner_text() and "verified" not in row.inner_text()
            assert "cam-7" in page.locator('tr[data-recording="patrol-0900"]').inner_text()
            page.screenshot(path=str(DOCS / "console-recordings.png"))
            page.select_option("#camera", "cam-7")
            page.click("form[role=search] button[type=submit]")
            assert page.locator('tr[data-recording="patrol-0900"]').count() == 1
            assert page.locator('tr[data-recording="raid-0600"]').count() == 0
            answer = page.goto(f"{url}{ref}")
            assert answer is not None and answer.status == 403
            assert "restricted" in text_of(page, "main")
            assert "cam-7" not in text_of(page, "main")
            assert page.locator("text=Download the exhibit").count() == 0
            csrf = page.input_value("form.who input[name=csrf]")
            tried = page.request.post(f"{url}{ref}/export", form={"csrf": csrf})
            assert tried.status == 403 and tried.headers["content-type"].startswith("text/html")
            sign_out(page)

            # the auditor sees the refusals in the custody log, the rows redacted
            sign_in(page, url, "ada", pw["ada"])
            page.goto(f"{url}/custody")
            refused = page.locator('tr[data-action="access_refused"]')
            assert refused.count() == 2  # the page, then the export
            for i in range(2):
                line = refused.nth(i).inner_text()
                assert "account:ivan" in line and "raid-0600" in line and "restricted" in line
                assert "cam-7" not in line
            assert "victim present" not in text_of(page, "main")
            refused.first.scroll_into_view_if_needed()
            page.screenshot(path=str(DOCS / "console-custody.png"))
            sign_out(page)

            # with a grant, the investigator sees it and exports it
            sign_in(page, url, "sam", pw["sam"])
            page.goto(f"{url}{ref}")
            page.select_option("#grantee", "ivan")
            page.fill("#grant-reason", "case 42: interview of the victim")
            page.get_by_role("button", name="Grant access").click()
            assert "Access granted" in text_of(page, "#done")
            sign_out(page)
            sign_in(page, url, "ivan", pw["ivan"])
            page.goto(f"{url}{ref}")
            assert "cam-7" in text_of(page, "#facts")
            with page.expect_download() as got:
                page.get_by_role("button", name="Download the exhibit").click()
            zipped = tmp_path / "exhibit.zip"
            got.value.save_as(zipped)
            names = zipfile.ZipFile(zipped).namelist()
            assert any(n.endswith("EXHIBIT.md") for n in names), names
            sign_out(page)

            # lifting the mark takes two supervisors
            sign_in(page, url, "sam", pw["sam"])
            page.goto(f"{url}{ref}")
            page.fill("#lift-reason", "no victim on the footage after all")
            page.get_by_role("button", name="Ask to lift the mark").click()
            page.get_by_role("button", name="Approve lifting the mark").click()
            assert "second supervisor" in text_of(page, "main")
            page.goto(f"{url}{ref}")
            page.select_option("#grantee", "sue")
            page.fill("#grant-reason", "second supervisor for the lift")
            page.get_by_role("button", name="Grant access").click()
            sign_out(page)
            sign_in(page, url, "sue", pw["sue"])
            page.goto(f"{url}{ref}")
            page.get_by_role("button", name="Approve lifting the mark").click()
            assert "lifted" in text_of(page, "#done")
            sign_out(page)
            sign_in(page, url, "ada", pw["ada"])
            page.goto(f"{url}/recordings")
            row = page.locator('tr[data-recording="raid-0600"]').inner_text()
            assert "restricted" not in row and "cam-7" in row

        actions = [(e.actor, e.action) for e in c.custody()]
        assert ("account:sam", "marked_sensitive") in actions
        assert ("account:ivan", "exported") in actions
        assert ("account:sue", "sensitive_lifted") in actions
