"""Issue 10, points 1-3: `bwv dock export` writes an exhibit that anyone checks with `bwv
verify EXHIBIT --device-pub P` (or `--dock-pub`), MP4s fragment by fragment, no agency key;
the export prints the verdict `bwv verify` gives on the folder it has just written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from crypto import testing as ct
from tests.test_journey_footage_export import DEVICE, docked, run  # noqa: F401

PUB_HEX = ct.device_identity(DEVICE).public_key.hex()


def bwv(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory, docked):  # noqa: F811
    d = tmp_path_factory.mktemp("keys")
    (d / "device.pub").write_text(PUB_HEX + "\n")
    seed = bytes.fromhex((docked["store"] / "dock.key").read_text().strip())
    (d / "dock.pub").write_text(SigningKey(seed).verify_key.encode().hex() + "\n")
    (d / "other.pub").write_text(SigningKey.generate().verify_key.encode().hex() + "\n")
    return d


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory, docked):  # noqa: F811
    out = tmp_path_factory.mktemp("ex") / "whole-exhibit"
    res = run(
        "export", "--store", docked["store"], "whole", "--out", out, "--agency-key",
        docked["agency_file"], "--zip", "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "VERIFIED: authentic and complete" in res.output
    return out


def verify_json(path: Path, *args: str | Path) -> tuple[int, dict]:
    res = bwv("verify", path, "--json", *args)
    return res.exit_code, json.loads(res.output)


def test_the_exhibit_holds_what_an_investigator_needs(exhibit):
    names = sorted(p.relative_to(exhibit).as_posix() for p in exhibit.rglob("*") if p.is_file())
    for want in (
        "EXHIBIT.md", "device.pub", "enrollment.json", "receipts.jsonl", "custody.jsonl",
        "report.json", "whole_0000.mp4", "whole_0001.mp4", "manifests/000000000005.end.json",
        "verify.html",
    ):  # fmt: skip
        assert want in names
    page = Path(__file__).parent.parent / "verifier" / "verify.html"
    assert (exhibit / "verify.html").read_bytes() == page.read_bytes()  # the offline verifier
    label = (exhibit / "EXHIBIT.md").read_text()
    assert DEVICE in label and "whole" in label and "bwv verify" in label
    assert "VERIFIED" in label and "SHA-256" in label and "pre-record" in label
    enrolled = json.loads((exhibit / "enrollment.json").read_text())
    assert enrolled["action"] == "enrolled" and enrolled["detail"]["token_id"]
    assert len((exhibit / "receipts.jsonl").read_text().splitlines()) == 3


def test_verify_agrees_with_the_export_by_device_key_dock_key_and_zip(exhibit, keys):
    code, rep = verify_json(exhibit, "--device-pub", keys / "device.pub")
    assert code == 0 and rep["ok"] and rep["findings"] == []
    assert [r["status"] for r in rep["recordings"]] == ["complete"]
    written = json.loads((exhibit / "report.json").read_text())
    assert written["ok"] is True and written["segments"] == rep["segments"]
    frag = [c for s in rep["segments"] for c in s["chunks"] if c["kind"] == "fragment"]
    assert frag and {c["status"] for c in frag} == {"authentic"}
    assert bwv("verify", exhibit, "--dock-pub", keys / "dock.pub").exit_code == 0
    zipped = exhibit.with_name(exhibit.name + ".zip")
    assert verify_json(zipped, "--device-pub", keys / "device.pub")[0] == 0
    res = bwv("verify", exhibit, "--dock-pub", keys / "other.pub")
    assert res.exit_code == 1 and "not signed by the dock key given" in res.output
    res = bwv("verify", exhibit)
    assert res.exit_code == 2 and "--device-pub" in res.output


def _copy(exhibit: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(exhibit, dst)
    return dst


def _fragment_offset(mp4: bytes, k: int) -> int:
    """Offset of the k-th moof (k from 1) in ``mp4``."""
    pos, n = 0, 0
    while pos < len(mp4):
        size = int.from_bytes(mp4[pos : pos + 4], "big")
        if mp4[pos + 4 : pos + 8] == b"moof":
            n += 1
            if n == k:
                return pos
        pos += size
    raise AssertionError("no such fragment")


def test_a_flipped_byte_in_a_fragment_is_that_fragment_altered(exhibit, keys, tmp_path):
    ex = _copy(exhibit, tmp_path)
    p = ex / "whole_0001.mp4"
    data = bytearray(p.read_bytes())
    data[_fragment_offset(bytes(data), 1) + 200] ^= 0x01
    p.write_bytes(bytes(data))
    code, rep = verify_json(ex, "--device-pub", keys / "device.pub")
    assert code == 1
    seg = next(s for s in rep["segments"] if s["segment_index"] == 1)
    assert seg["status"] == "altered"
    assert [c["status"] for c in seg["chunks"] if c["kind"] == "fragment"][0] == "altered"
    assert next(s for s in rep["segments"] if s["segment_index"] == 0)["status"] == "authentic"


@pytest.mark.parametrize("change", ["truncate", "delete", "swap", "extra", "manifest"])
def test_every_change_to_a_copy_is_found(exhibit, keys, tmp_path, change):
    ex = _copy(exhibit, tmp_path)
    m0, m1 = ex / "whole_0000.mp4", ex / "whole_0001.mp4"
    if change == "truncate":
        m0.write_bytes(m0.read_bytes()[: m0.stat().st_size // 2])
    elif change == "delete":
        m1.unlink()
    elif change == "swap":
        a, b = m0.read_bytes(), m1.read_bytes()
        m0.write_bytes(b), m1.write_bytes(a)
    elif change == "extra":
        (ex / "notes.txt").write_text("x\n")
    else:
        p = ex / "manifests" / "000000000004.manifest.json"
        p.write_bytes(p.read_bytes().replace(b'"whole"', b'"whale"', 1))
    code, rep = verify_json(ex, "--device-pub", keys / "device.pub")
    assert code == 1 and not rep["ok"]
    kinds = {f["kind"] for f in rep["findings"]}
    want = {"truncate": "altered", "delete": "missing", "swap": "reordered", "extra": "extra"}
    assert want.get(change, "altered") in kinds, rep["findings"]
    if change == "truncate":  # the fragment cut in two: the file ends inside it
        assert any("cut short" in f["detail"] for f in rep["findings"]), rep["findings"]


def test_without_the_agency_key_the_encrypted_exhibit_verifies(docked, keys, tmp_path):  # noqa: F811
    out = tmp_path / "enc"
    res = run("export", "--store", docked["store"], "whole", "--out", out, "-q")
    assert res.exit_code == 0, res.output
    assert bwv("verify", out, "--device-pub", keys / "device.pub").exit_code == 0


def test_export_and_verify_agree_on_a_recording_that_did_not_end_well(docked, keys, tmp_path):  # noqa: F811
    out = tmp_path / "crashed"
    res = run(
        "export", "--store", docked["store"], "crashed", "--out", out, "--agency-key",
        docked["agency_file"], "-q",
    )  # fmt: skip
    code, rep = verify_json(out, "--device-pub", keys / "device.pub")
    assert res.exit_code == code
    written = json.loads((out / "report.json").read_text())
    assert written["ok"] == rep["ok"] and written["findings"] == rep["findings"]
    assert (out / "segments" / "crashed_0001.bwvseg").exists()  # the empty one, as stored


def test_the_camera_trail_lines_of_the_recording_go_into_the_exhibit(docked, keys, tmp_path):  # noqa: F811
    trail = docked["store"].parent / "dev" / "outbox" / "trail.jsonl"
    out = tmp_path / "with-trail"
    args = ["export", "--store", docked["store"], "whole", "--out", out, "--trail", trail]
    res = run(*args, "--agency-key", docked["agency_file"], "-q")
    assert res.exit_code == 0, res.output
    lines = (out / "trail.jsonl").read_bytes().splitlines(keepends=True)
    assert lines and all(json.loads(ln)["record"]["recording_id"] == "whole" for ln in lines)
    assert all(ln in trail.read_bytes().splitlines(keepends=True) for ln in lines)
    assert bwv("verify", out, "--device-pub", keys / "device.pub").exit_code == 0
    (out / "trail.jsonl").write_bytes(b"".join(lines[:2] + lines[3:]))  # one line dropped
    code, rep = verify_json(out, "--device-pub", keys / "device.pub")
    assert code == 1 and {f["kind"] for f in rep["findings"]} == {"trail_missing"}
    again = run(*args, "--replace", "-q")  # an exhibit with its trail is not an outbox
    assert again.exit_code == 0, again.output


def test_an_exhibit_with_no_evidence_in_it_is_not_verified(keys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "EXHIBIT.md").write_text("# an exhibit label and nothing else\n")
    res = bwv("verify", empty, "--device-pub", keys / "device.pub")
    assert res.exit_code == 2 and "holds no evidence file" in res.output
    assert "VERIFIED" not in res.output
