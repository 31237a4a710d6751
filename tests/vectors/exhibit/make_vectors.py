"""Make the exhibit test vectors (docs/evidence-format.md, "Test vectors").

    .venv/bin/python tests/vectors/exhibit/make_vectors.py            # the bundles, from source/
    .venv/bin/python tests/vectors/exhibit/make_vectors.py --source   # source/ too (new ciphertext)

``source/`` holds signed recordings made with fixed TEST keys (``keys.json``): device A's
outbox (recording ``vec-r1``: 3 segments of 2 fragments, then ``vec-r2``), another history
signed by device A's key (``fork``: a cloned card), device B's outbox (``vec-b1``), and
``vec-r1`` made again by device A with segment 1 sealed to a substitute agency key (``swap``:
a swapped ``agency.pub``).
Sealing is randomised, so ``source/`` is stored, not remade by the tests. From it the bundles
are made deterministically: ``pristine/`` (the exhibit of ``vec-r1``: its MP4s, decrypted
with the test agency key, its signed records, its trail lines, its device key and the test
dock's signed enrollment) and one altered copy per kind of tampering. ``EXPECTED.md`` and
``expected_verdicts.json`` beside them were written by hand from the specification.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from nacl.public import PrivateKey  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402
from vector_log import (  # noqa: E402
    OTHER_WITNESS_NAME,
    Log,
    device_a_log,
    label_line,
    witness_signer,
    write_papers,
)

from crypto.evidence import EvidenceSink  # noqa: E402
from crypto.identity import DeviceIdentity  # noqa: E402
from crypto.seal import decrypt_segment  # noqa: E402
from crypto.testing import WALL0, S, blob, seed, segment_info  # noqa: E402
from crypto.trail import split_lines  # noqa: E402
from tlog.merkle import leaf_hash  # noqa: E402

SOURCE = HERE / "source"
# bundles with the log papers (vector_log.py), checked with the TEST witness's key and its
# latest checkpoint (``witness.vkey``, ``witness.checkpoint``) and the TEST dock key
LOG_VECTORS = (
    "pristine_witnessed",
    "record_not_in_log",
    "checkpoint_not_cosigned",
    "forked_log",
    "altered_inclusion_proof",
    "proof_in_an_unwitnessed_tree",
)
R1, R2, RB, RF = "vec-r1", "vec-r2", "vec-b1", "vec-r1"  # the fork reuses r1's id
VECTORS = (
    "pristine",
    "flipped_byte",
    "truncated_mp4",
    "missing_middle_segment",
    "missing_last_segment_and_end",
    "reordered_segments",
    "segment_from_another_recording",
    "segment_from_another_device",
    "altered_manifest",
    "altered_trail_line",
    "forked_chain",
    "extra_file",
    "wrong_agency_key",
    *LOG_VECTORS,
)


def keys() -> dict[str, bytes]:
    return {
        "device_a": seed("exhibit vector device a"),
        "device_b": seed("exhibit vector device b"),
        "agency": seed("exhibit vector agency"),
        "dock": seed("exhibit vector dock"),
        "substitute_agency": seed("exhibit vector substitute agency"),
        "witness": seed("exhibit vector witness"),
        "other_witness": seed("exhibit vector other witness"),
    }


def ident(which: str) -> DeviceIdentity:
    return DeviceIdentity.from_seed(f"vec-cam-{which}", keys()[f"device_{which}"])


def box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _record(
    root: Path, who: str, recordings: list[tuple[str, int, str]], swapped: int | None = None
) -> None:
    """``swapped``: the index of the segment sealed to the substitute agency key."""
    agency = PrivateKey(keys()["agency"])
    substitute = PrivateKey(keys()["substitute_agency"])
    sink = EvidenceSink(
        root / "outbox", ident(who), bytes(agency.public_key), "bwv-vector", root / "chain.json"
    )
    for rec, segments, label in recordings:
        for i in range(segments):
            sink.agency_pk = (substitute if i == swapped else agency).public_key
            info = segment_info(rec, i, seg_us=2 * S)
            sink.open_segment(info)
            tag = f"{label}/{i}"
            sink.write_init(box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", blob(tag, 40)))
            for k in range(2):
                frag = box(b"moof", blob(f"{tag}/moof{k}", 24))
                frag += box(b"mdat", blob(f"{tag}/mdat{k}", 48 + 8 * k))
                t = info.start_us + k * S
                sink.write_fragment(frag, t, t + S)
            end = info.start_us + 2 * S
            sink.close_segment(end, WALL0 + end)
        sink.end_recording(rec, "stopped", 10 * S + segments * 2 * S)
    sink.close()
    (root / "chain.json").unlink(missing_ok=True)
    for p in root.glob("chain.json*"):
        p.unlink()


def make_source() -> None:
    shutil.rmtree(SOURCE, ignore_errors=True)
    _record(SOURCE / "a", "a", [(R1, 3, "r1"), (R2, 1, "r2")])
    _record(SOURCE / "fork", "a", [(RF, 1, "fork")])
    _record(SOURCE / "b", "b", [(RB, 1, "b1")])
    _record(SOURCE / "swap", "a", [(R1, 3, "r1")], swapped=1)
    (SOURCE / "keys.json").write_text(
        json.dumps(
            {
                "comment": "TEST KEYS ONLY: seeds derived from fixed labels",
                **{k: v.hex() for k, v in keys().items()},
            },
            indent=2,
        )
        + "\n"
    )


# -- the bundles -----------------------------------------------------------------------
def agency_key() -> PrivateKey:
    return PrivateKey(keys()["agency"])


def _plain(outbox: Path, rec: str, idx: int) -> bytes:
    data = (outbox / "segments" / f"{rec}_{idx:04d}.bwvseg").read_bytes()
    d = decrypt_segment(data, agency_key())
    assert d.error is None, d.error
    return d.plaintext


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def enrollment() -> dict:
    pub = ident("a").public_key
    body = {
        "index": 1,
        "at_us": WALL0,
        "actor": "technician",
        "action": "enrolled",
        "device_id": ident("a").device_id,
        "segment_id": None,
        "sha256": hashlib.sha256(pub).hexdigest(),
        "detail": {
            "key_id": ident("a").key_id,
            "token_id": hashlib.sha256(b"vector token").hexdigest()[:16],
        },
        "prev_hash": "0" * 64,
    }
    h = hashlib.sha256(_json(body)).hexdigest()
    sig = SigningKey(keys()["dock"]).sign(bytes.fromhex(h)).signature
    return body | {"entry_hash": h, "signature": base64.b64encode(sig).decode()}


def pristine(dst: Path, source: str = "a") -> None:
    a = SOURCE / source / "outbox"
    (dst / "manifests").mkdir(parents=True)
    for p in sorted((a / "chain").iterdir()):
        if json.loads(p.read_bytes())["record"]["recording_id"] == R1:
            shutil.copyfile(p, dst / "manifests" / p.name)
    for i in range(3):
        name = f"{R1}_{i:04d}.bwvseg"
        if decrypt_segment((a / "segments" / name).read_bytes(), agency_key()).error is None:
            (dst / f"{R1}_{i:04d}.mp4").write_bytes(_plain(a, R1, i))
        else:  # sealed to another key: the agency cannot open it, so it is exported as stored
            (dst / "segments").mkdir(exist_ok=True)
            shutil.copyfile(a / "segments" / name, dst / "segments" / name)
    trail = [line for _, line in split_lines((a / "trail.jsonl").read_bytes())]
    mine = [ln for ln in trail if json.loads(ln)["record"]["recording_id"] == R1]
    (dst / "trail.jsonl").write_bytes(b"".join(mine))
    (dst / "device.pub").write_text(ident("a").public_key.hex() + "\n")
    (dst / "enrollment.json").write_text(json.dumps(enrollment(), indent=2, sort_keys=True) + "\n")
    (dst / "EXHIBIT.md").write_text(
        f"# Exhibit: recording {R1} (TEST VECTOR)\n\n"
        f"- device: {ident('a').device_id}, key id {ident('a').key_id}\n"
        f"- check: bwv verify pristine --device-pub device_a.pub\n"
    )


def _mdat_offset(mp4: bytes, k: int) -> int:
    """Offset of the k-th mdat box (k from 1)."""
    pos, n = 0, 0
    while pos < len(mp4):
        if mp4[pos + 4 : pos + 8] == b"mdat":
            n += 1
            if n == k:
                return pos
        pos += int.from_bytes(mp4[pos : pos + 4], "big")
    raise ValueError("no such mdat")


def tamper(name: str, d: Path) -> None:
    m = [d / f"{R1}_{i:04d}.mp4" for i in range(3)]
    chain = sorted((d / "manifests").iterdir())
    if name == "flipped_byte":  # a byte inside fragment 2 of segment 1
        data = bytearray(m[1].read_bytes())
        data[_mdat_offset(bytes(data), 2) + 20] ^= 0x01
        m[1].write_bytes(bytes(data))
    elif name == "truncated_mp4":  # segment 2 cut inside fragment 2's mdat
        data = m[2].read_bytes()
        m[2].write_bytes(data[: _mdat_offset(data, 2) + 20])
    elif name == "missing_middle_segment":
        m[1].unlink()
    elif name == "missing_last_segment_and_end":
        m[2].unlink()
        chain[2].unlink()  # segment 2's manifest
        chain[3].unlink()  # the end record
    elif name == "reordered_segments":
        a, b = m[0].read_bytes(), m[1].read_bytes()
        m[0].write_bytes(b)
        m[1].write_bytes(a)
    elif name == "segment_from_another_recording":
        m[1].write_bytes(_plain(SOURCE / "a" / "outbox", R2, 0))
    elif name == "segment_from_another_device":
        m[1].write_bytes(_plain(SOURCE / "b" / "outbox", RB, 0))
    elif name == "altered_manifest":  # one digit of segment 1's end_us
        data = chain[1].read_bytes()
        i = data.index(b'"end_us":') + len(b'"end_us":')
        chain[1].write_bytes(data[:i] + (b"9" if data[i : i + 1] != b"9" else b"8") + data[i + 1 :])
    elif name == "altered_trail_line":  # one hex digit of line 6's plain_sha256
        lines = (d / "trail.jsonl").read_bytes().split(b"\n")
        i = lines[5].index(b'"plain_sha256":"') + len(b'"plain_sha256":"')
        c = b"0" if lines[5][i : i + 1] != b"0" else b"1"
        lines[5] = lines[5][:i] + c + lines[5][i + 1 :]
        (d / "trail.jsonl").write_bytes(b"\n".join(lines))
    elif name == "forked_chain":  # another history's record 0, signed by the same key
        (d / "manifests" / "fork").mkdir()
        src = SOURCE / "fork" / "outbox" / "chain" / "000000000000.manifest.json"
        shutil.copyfile(src, d / "manifests" / "fork" / src.name)
    elif name == "extra_file":
        (d / "notes.txt").write_text("an investigator's note, not part of the exhibit\n")


# -- the witnessed bundles ---------------------------------------------------------------
LOG_SIZE = 7  # the dock's latest checkpoint at export: enrollment + device A's 6 records
# a leaf the dock appended after the witness's latest checkpoint (a custody entry's place)
UNWITNESSED_LEAF = b"bwv:log-custody:v2\0" + b'{"action":"exported","comment":"TEST VECTOR"}'


def chain_lines() -> list[bytes]:
    """Device A's chain records (both recordings), in seq order."""
    return [p.read_bytes() for p in sorted((SOURCE / "a" / "outbox" / "chain").iterdir())]


def the_log(fork: bool = False) -> Log:
    """The TEST dock's log; ``fork``: another tree of the same size (leaves 5 and 6,
    recording vec-r2's records, in the other order)."""
    lines = chain_lines()
    if fork:
        lines = lines[:4] + [lines[5], lines[4]]
    return device_a_log(lines, enrollment(), keys()["dock"], keys()["witness"])


def witnessed(name: str, d: Path) -> None:
    """``d`` (a pristine bundle) with its log papers, changed as ``name`` says."""
    mine = [p.read_bytes() for p in sorted((d / "manifests").iterdir())]
    log = the_log(fork=name == "forked_log")
    if name == "checkpoint_not_cosigned":  # cosigned by a witness the verifier does not trust
        log.witness = witness_signer(keys()["other_witness"], OTHER_WITNESS_NAME)
    write_papers(d, log, LOG_SIZE, mine)
    if name == "checkpoint_not_cosigned":
        # the records' first checkpoints as the real witness cosigned them
        log.witness = the_log().witness
        for p in (d / "log" / "checkpoints").iterdir():
            p.write_bytes(log.note(int(p.name)))
    proofs = (d / "log" / "proofs.jsonl").read_bytes().splitlines(keepends=True)
    if name == "record_not_in_log":  # record 2 (segment 2's manifest) shown in no checkpoint
        (d / "log" / "checkpoints" / str(json.loads(proofs[2])["first"]["tree_size"])).unlink()
        del proofs[2]
    elif name == "altered_inclusion_proof":  # a bit of the 1st hash of record 1's proof
        p = json.loads(proofs[1])
        h = bytearray(base64.b64decode(p["inclusion"][0]))
        h[0] ^= 0x01
        p["inclusion"][0] = base64.b64encode(bytes(h)).decode()
        proofs[1] = json.dumps(p, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    elif name == "proof_in_an_unwitnessed_tree":  # record 3 proven in a tree of 8 leaves
        big = the_log()
        big.leaves.append(UNWITNESSED_LEAF)
        big.hashes = [leaf_hash(x) for x in big.leaves]
        p = json.loads(proofs[3])
        p["tree_size"], p["inclusion"] = LOG_SIZE + 1, big.proof(p["leaf_index"], LOG_SIZE + 1)
        proofs[3] = json.dumps(p, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    (d / "log" / "proofs.jsonl").write_bytes(b"".join(proofs))
    with (d / "EXHIBIT.md").open("a") as f:
        f.write(label_line(log, LOG_SIZE))


def make_bundles(out: Path) -> None:
    for name in VECTORS:
        shutil.rmtree(out / name, ignore_errors=True)
        pristine(out / name, "swap" if name == "wrong_agency_key" else "a")
        if name in LOG_VECTORS:
            witnessed(name, out / name)
        else:
            tamper(name, out / name)
    log = the_log()
    (out / "witness.vkey").write_text(
        "# TEST KEY ONLY: the witness of the exhibit vectors (seed from the label "
        '"exhibit vector witness")\n' + log.witness.vkey + "\n"
    )
    (out / "witness.checkpoint").write_bytes(log.note(LOG_SIZE))
    (out / "device_a.pub").write_text(ident("a").public_key.hex() + "\n")
    (out / "agency.pub").write_text(bytes(agency_key().public_key).hex() + "\n")
    dock_pub = SigningKey(keys()["dock"]).verify_key.encode().hex()
    (out / "dock.pub").write_text(dock_pub + "\n")


if __name__ == "__main__":
    if "--source" in sys.argv[1:]:
        make_source()
    make_bundles(HERE)
