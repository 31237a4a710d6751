"""Issue 13: the second, independent verifier, one offline web page (verifier/verify.html),
in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser). On
every exhibit vector (tests/vectors/exhibit/) the page gives the verdict `bwv verify --json`
gives: `ok`, the finding kinds, each recording's status, each segment's and each fragment's
status. A screenshot of the page on a tampered exhibit is saved for the README
(docs/verify-page.png). Also: the checked-in page is what verifier/build.py makes."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bwv.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "verifier" / "verify.html"
SCREENSHOT = ROOT / "docs" / "verify-page.png"
VEC = ROOT / "tests" / "vectors" / "exhibit"
EXPECTED = json.loads((VEC / "expected_verdicts.json").read_text())
CHROMIUM = "/usr/bin/chromium"  # Debian's package `chromium` (.ci/run installs it)
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

# Vectors on which the page does not (yet) agree with `bwv verify`: name -> the disagreement.
DISAGREE: dict[str, str] = {}
VECTORS = [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=DISAGREE[n]))
    if n in DISAGREE
    else n
    for n in sorted(EXPECTED["vectors"])
]


def _hex(name: str) -> str:
    return (VEC / name).read_text().strip()


def _hex_of(path: Path) -> str:
    return path.read_text().strip()


def anchors_and_args(name: str) -> tuple[dict, list[str]]:
    """The keys to trust, for the page and for `bwv verify` (as expected_verdicts.json says)."""
    device = EXPECTED["device_pub"]
    anchors: dict[str, Any] = {"devicePub": _hex(device), "agencyPub": _hex(EXPECTED["agency_pub"])}
    args = ["--device-pub", str(VEC / device)]
    args += ["--agency-pub", str(VEC / EXPECTED["agency_pub"])]
    if EXPECTED["vectors"][name].get("log"):
        w = EXPECTED["witness"]
        vkeys = (VEC / w["witness_key"]).read_text().splitlines()
        anchors |= {
            "dockPub": _hex(w["dock_pub"]),
            "witnessVkeys": [line.strip() for line in vkeys if line.strip()],
            "checkpoint": base64.b64encode((VEC / w["checkpoint"]).read_bytes()).decode(),
        }
        args += ["--witness-key", str(VEC / w["witness_key"])]
        args += ["--checkpoint", str(VEC / w["checkpoint"]), "--dock-pub", str(VEC / w["dock_pub"])]
    return anchors, args


def bundle_files(bundle: Path) -> dict[str, str]:
    """The bundle's files by relative name, base64 (what window.bwvVerifyFiles takes)."""
    return {
        p.relative_to(bundle).as_posix(): base64.b64encode(p.read_bytes()).decode()
        for p in sorted(bundle.rglob("*"))
        if p.is_file()
    }


def compared(rep: dict) -> dict:
    """What the two verifiers must agree on, fragment by fragment."""
    segs = sorted(
        (
            str(s.get("recording_id")),
            str(s.get("segment_index")),
            s["status"],
            tuple((str(c.get("chunk")), c["status"]) for c in s.get("chunks", [])),
        )
        for s in rep.get("segments", [])
    )
    return {
        "ok": rep.get("ok"),
        "finding_kinds": sorted(Counter(f["kind"] for f in rep.get("findings", [])).elements()),
        "recordings": sorted((r["recording_id"], r["status"]) for r in rep.get("recordings", [])),
        "segments": segs,
    }


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # the dev extra: pip install -e .[dev]

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1000, "height": 900}, offline=True)
    pg = ctx.new_page()
    pg.goto(PAGE.as_uri())
    pg.wait_for_selector('body[data-checks="0"]', state="attached")
    yield pg
    ctx.close()


def page_report(page, bundle: Path, anchors: dict) -> dict:
    return page.evaluate("([f, a]) => window.bwvVerifyFiles(f, a)", [bundle_files(bundle), anchors])


@pytest.mark.parametrize("name", VECTORS)
def test_the_page_and_bwv_verify_agree_fragment_by_fragment(page, name):
    anchors, args = anchors_and_args(name)
    res = CliRunner().invoke(main, ["verify", str(VEC / name), "--json", *args])
    want = json.loads(res.output)
    got = page_report(page, VEC / name, anchors)
    assert "error" not in got, got
    assert compared(got) == compared(want)
    verdict = page.inner_text("#verdict")
    assert verdict == ("VERIFIED" if want["ok"] else "NOT VERIFIED")
    assert "device key" in page.inner_text("#trusted")  # the page says which key it trusted


TPM = ROOT / "tests" / "vectors" / "tpm"
TPM_EXPECTED = json.loads((TPM / "expected_verdicts.json").read_text())


def tpm_bundle(vector: dict, out: Path) -> Path:
    """A TPM-suite vector (tests/vectors/tpm/: a P-256 key's recording, its end record
    changed) as an exhibit: the outbox's chain/ is the exhibit's manifests/, and the label
    that makes `bwv verify` read the folder as an exhibit."""
    shutil.copytree(TPM / "outbox" / "segments", out / "segments")
    (out / "EXHIBIT.md").write_text(f"# A TPM-suite vector as an exhibit: {vector['name']}\n")
    shutil.copytree(TPM / "outbox" / "chain", out / "manifests")
    shutil.copy(TPM / "outbox" / "trail.jsonl", out / "trail.jsonl")
    for ch in vector["change"]:
        name = ch["replace"].replace("chain/", "manifests/", 1)
        shutil.copy(TPM / ch["with"], out / name)
    return out


def counter_findings(rep: dict) -> list[dict]:
    keys = ("kind", "seq", "counter", "prev_seq", "prev_counter")
    return [{k: f.get(k) for k in keys} for f in rep["findings"] if f["kind"].startswith("counter")]


@pytest.mark.parametrize("vector", TPM_EXPECTED["vectors"], ids=lambda v: v["name"])
def test_the_page_and_bwv_verify_agree_on_a_tpm_keys_exhibit(page, tmp_path, vector):
    """ECDSA P-256 in the browser's WebCrypto: a high-S signature refused, a suite that is not
    the key's, the counter rule; the page names the suite that signed."""
    bundle = tpm_bundle(vector, tmp_path / "exhibit")
    agency = tmp_path / "agency.pub"
    agency.write_text(json.loads((TPM / "keys.json").read_text())["agency_public_hex"] + "\n")
    device = TPM / TPM_EXPECTED["device_pub"]
    args = ["--json", "--device-pub", str(device), "--agency-pub", str(agency)]
    want = json.loads(CliRunner().invoke(main, ["verify", str(bundle), *args]).output)
    got = page_report(page, bundle, {"devicePub": _hex_of(device), "agencyPub": _hex_of(agency)})
    assert compared(got) == compared(want)
    assert got["suite"] == want["suite"] == vector["suite"] == "ecdsa-p256-sha256"
    assert counter_findings(got) == counter_findings(want) == vector["counter_findings"]
    assert sorted(f["kind"] for f in got["findings"]) == vector["finding_kinds"]
    assert page.inner_text("#verdict") == ("VERIFIED" if vector["ok"] else "NOT VERIFIED")
    assert "ECDSA P-256" in page.inner_text("#trusted")


def enroll_in_bundle(bundle: Path, device_pub: Path) -> None:
    """device.pub and the enrollment.json the exhibit vectors' dock (its test seed in
    tests/vectors/exhibit/source/keys.json) signs for that key, as `bwv dock export` puts them."""
    from nacl.signing import SigningKey

    pub = bytes.fromhex(_hex_of(device_pub))
    seed = json.loads((VEC / "source" / "keys.json").read_text())["dock"]
    body = {
        "action": "enrolled", "actor": "technician", "at_us": 1_700_000_000_000_000,
        "detail": {"key_id": hashlib.sha256(pub).hexdigest()[:16]},
        "device_id": "bwv-vector-tpm-01", "index": 1, "prev_hash": "0" * 64,
        "segment_id": None, "sha256": hashlib.sha256(pub).hexdigest(),
    }  # fmt: skip
    h = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    sig = SigningKey(bytes.fromhex(seed)).sign(h.digest()).signature
    entry = body | {"entry_hash": h.hexdigest(), "signature": base64.b64encode(sig).decode()}
    (bundle / "enrollment.json").write_text(json.dumps(entry))
    (bundle / "device.pub").write_text(pub.hex() + "\n")


def test_trusting_the_dock_key_for_a_tpm_key_reads_its_p256_device_pub(page, tmp_path):
    bundle = tpm_bundle(TPM_EXPECTED["vectors"][0], tmp_path / "exhibit")
    enroll_in_bundle(bundle, TPM / TPM_EXPECTED["device_pub"])
    got = page_report(page, bundle, {"dockPub": _hex("dock.pub")})
    assert got["ok"] is True and got["suite"] == "ecdsa-p256-sha256"
    assert "dock key" in page.inner_text("#trusted")
    res = CliRunner().invoke(
        main, ["verify", str(bundle), "--json", "--dock-pub", str(VEC / "dock.pub")]
    )
    assert compared(got) == compared(json.loads(res.output))


def test_a_tampered_exhibit_shows_its_bad_fragment_and_is_screenshot(page):
    anchors, _ = anchors_and_args("flipped_byte")
    page.fill("#device-pub", anchors["devicePub"])  # as the investigator would have
    page_report(page, VEC / "flipped_byte", anchors)
    assert page.inner_text("#verdict") == "NOT VERIFIED"
    assert "device key" in page.inner_text("#trusted")
    assert "incomplete" in page.inner_text("#recordings")
    assert page.locator(".timeline .badc").count() == 1  # the one altered fragment, in red
    # the vectors' MP4s are made-up boxes: the page says they do not play (the raid's do)
    page.wait_for_selector(".noplay >> nth=2", state="attached")
    assert page.locator("video").count() == 0
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_without_a_key_to_trust_the_page_cannot_check(page):
    got = page_report(page, VEC / "pristine", {})
    assert "error" in got
    assert page.inner_text("#verdict").startswith("could not check:")


def test_the_checked_in_page_is_what_build_py_makes():
    r = subprocess.run(
        [sys.executable, str(ROOT / "verifier" / "build.py"), "--check"], capture_output=True
    )
    assert r.returncode == 0, r.stderr.decode()
    html = PAGE.read_text()
    assert "<script src" not in html and "http://" not in html and "https://" not in html


def test_the_dock_serves_the_page_without_a_device_signature(tmp_path):
    from fastapi.testclient import TestClient

    from dock.server import create_app, open_dock

    with TestClient(create_app(open_dock(tmp_path / "store"))) as client:
        r = client.get("/verify.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.content == PAGE.read_bytes()


def _pick(page, selector: str, what: Path | list[Path], key: str) -> dict:
    """What the page reports when the investigator types the key and picks the exhibit."""
    page.fill("#device-pub", key)
    n = int(page.get_attribute("body", "data-checks"))
    page.set_input_files(selector, what)
    page.wait_for_selector(f'body[data-checks="{n + 1}"]', state="attached")
    return page.evaluate("window.bwvLastReport")


def test_a_picked_zip_or_folder_gives_what_the_bundle_gives(page, tmp_path):
    from dock.exhibit import zip_exhibit

    anchors, _ = anchors_and_args("flipped_byte")
    bundle = tmp_path / "flipped_byte"
    shutil.copytree(VEC / "flipped_byte", bundle)
    want = page_report(page, bundle, {"devicePub": anchors["devicePub"]})
    got_zip = _pick(page, "#pick-zip", zip_exhibit(bundle), anchors["devicePub"])  # deflated
    assert compared(got_zip) == compared(want)
    got_dir = _pick(page, "#pick-dir", bundle, anchors["devicePub"])
    assert compared(got_dir) == compared(want)


def test_the_page_and_bwv_verify_agree_on_a_raids_exhibit(page, tmp_path):
    from capture.config import from_dict
    from simulator.raid import RaidPlan, run_raid
    from tests.conftest import SMALL

    out = tmp_path / "raid"
    assert run_raid(from_dict(SMALL), out, RaidPlan(record_s=1.0)).ok
    s = json.loads((out / "summary.json").read_text())
    exhibit, pub = out / s["exhibits"][0], out / s["keys"]["device_public_key"]
    res = CliRunner().invoke(main, ["verify", str(exhibit), "--json", "--device-pub", str(pub)])
    want = json.loads(res.output)
    assert want["ok"] is True
    got = page_report(page, exhibit, {"devicePub": pub.read_text().strip()})
    assert compared(got) == compared(want)
    page.wait_for_selector("video[data-plays=yes]", state="attached")  # the footage plays


def test_trusting_the_dock_key_reads_the_enrollment_and_says_so(page):
    res = CliRunner().invoke(
        main, ["verify", str(VEC / "pristine"), "--json", "--dock-pub", str(VEC / "dock.pub")]
    )
    want = json.loads(res.output)
    got = page_report(page, VEC / "pristine", {"dockPub": _hex("dock.pub")})
    assert compared(got) == compared(want) and got["ok"] is True
    assert "dock key" in page.inner_text("#trusted")
    other = page_report(page, VEC / "pristine", {"dockPub": _hex("device_a.pub")})
    assert other.get("ok") is not True and page.inner_text("#verdict") != "VERIFIED"
