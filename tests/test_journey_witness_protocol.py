"""The witness speaks C2SP tlog-witness over real HTTP on loopback: every answer code, the
rules on rollbacks and forks, the evidence it keeps, and its durable state."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from nacl.signing import SigningKey

from tests.witness_helpers import ORIGIN, FakeLog, make_state
from tlog.cosignature import CosignatureSigner, CosignatureVerifier
from tlog.merkle import EMPTY_ROOT
from tlog.note import NoteError, NoteSigner, NoteVerifier, add_signatures, open_note, sign_note
from witness.client import WitnessClient, WitnessConflict, WitnessRefused, request_body
from witness.core import Witness
from witness.server import WitnessServerThread
from witness.state import StateError


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[FakeLog, Path, str, Witness, str]]:
    log = FakeLog()
    state, vkey = make_state(tmp_path, log)
    w = Witness(state, clock=Clock())
    with WitnessServerThread(w) as server:
        yield log, state, vkey, w, server.url


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/add-checkpoint", content=body, timeout=10)


def verifiers(log: FakeLog, vkey: str) -> list:
    return [NoteVerifier.from_vkey(log.signer.vkey), CosignatureVerifier.from_vkey(vkey)]


def test_cosigns_a_first_checkpoint_then_consistent_ones(setup) -> None:
    log, state, vkey, w, url = setup
    client = WitnessClient(url, vkey=vkey)
    log.grow(5)
    lines = client.add_checkpoint(log.note(), 0, [])
    assert len(lines) == 1
    assert CosignatureVerifier.from_vkey(vkey).verify(log.body(), lines[0]) == 1_800_000_000
    log.grow(8)
    client.add_checkpoint(log.note(), 5, log.proof(5))
    client.add_checkpoint(log.note(), 13, [])  # the same checkpoint again: cosigned again
    held = client.latest(ORIGIN)
    assert held is not None
    text, names = open_note(held, verifiers(log, vkey))
    assert text == log.body() and names == [ORIGIN, "witness.test/w1"]
    by_hash = httpx.get(f"{url}/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint")
    assert by_hash.status_code == 200 and by_hash.content == held
    assert httpx.get(url + "/vkey").text.strip() == vkey
    assert httpx.get(f"{url}/checkpoint/{quote('example.com/other', safe='')}").status_code == 404
    # what it holds survives a restart of the witness
    assert Witness(state).latest(ORIGIN) == held


def test_the_answer_codes(setup) -> None:
    log, state, vkey, w, url = setup
    log.grow(4)
    assert post(url, request_body(log.note(), 0, [])).status_code == 200
    log.grow(3)
    # 409: the old size is not the witness's; its size in the body, text/x.tlog.size
    r = post(url, request_body(log.note(), 2, log.proof(2)))
    assert r.status_code == 409 and r.text == "4\n"
    assert r.headers["content-type"] == "text/x.tlog.size"
    with pytest.raises(WitnessConflict) as conflict:
        WitnessClient(url).add_checkpoint(log.note(), 0, [])
    assert conflict.value.size == 4
    # 404: a log it does not witness
    stranger = FakeLog(origin="example.com/stranger")
    stranger.grow(1)
    assert post(url, request_body(stranger.note(), 0, [])).status_code == 404
    # 403: signed by another key under the log's name; a bad signature from the log's key
    impostor = FakeLog(seed=b"\x09" * 32, hashes=list(log.hashes))
    assert post(url, request_body(impostor.note(), 4, log.proof(4))).status_code == 403
    good = log.note()
    sig_at = good.index("— ".encode())
    forged = good[: sig_at + 30] + bytes([good[sig_at + 30] ^ 1]) + good[sig_at + 31 :]
    assert post(url, request_body(forged, 4, log.proof(4))).status_code == 403
    # 400: old size above the checkpoint's; malformed bodies
    assert post(url, request_body(log.note(3), 4, [])).status_code == 400
    for body in (
        b"",
        b"old 4\n",
        b"old 04\n\n" + good,
        b"new 4\n\n" + good,
        b"old 4\nnot base64!\n\n" + good,
        b"old 4\n\nnot a note\n",
    ):
        assert post(url, body).status_code == 400, body
    too_long = b"old 4\n" + b"".join(base64.b64encode(b"\0" * 32) + b"\n" for _ in range(64))
    assert post(url, too_long + b"\n" + good).status_code == 400
    # 422: a flipped proof hash
    bad = log.proof(4)
    bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
    assert post(url, request_body(good, 4, bad)).status_code == 422
    # 422: a proof between equal checkpoints (not a fork: no evidence kept)
    kept = sorted((state / "forks").iterdir())  # the flipped proof above: kept as suspect
    assert len(kept) == 1
    assert post(url, request_body(log.note(4), 4, [b"\0" * 32])).status_code == 422
    assert sorted((state / "forks").iterdir()) == kept
    # 413: a body far larger than any request
    assert post(url, b"old 4\n" + b"A" * (70 << 10)).status_code == 413
    # none of this moved the witness
    assert post(url, request_body(good, 4, log.proof(4))).status_code == 200
    with pytest.raises(WitnessRefused) as refused:
        WitnessClient(url).add_checkpoint(forged, 7, [])
    assert refused.value.status == 403


def test_size_zero_and_proofs_from_zero(tmp_path: Path) -> None:
    log = FakeLog()
    state, vkey = make_state(tmp_path, log)
    w = Witness(state, clock=Clock())
    zero_wrong_root = sign_note(
        f"{ORIGIN}\n0\n{base64.b64encode(b'1' * 32).decode()}\n", [log.signer]
    )
    assert w.add_checkpoint(request_body(zero_wrong_root, 0, [])).status == 422
    log.grow(3)
    assert w.add_checkpoint(request_body(log.note(), 0, [b"\0" * 32])).status == 422
    assert w.add_checkpoint(request_body(log.note(0), 0, [])).status == 200  # the empty tree
    assert w.held(ORIGIN).checkpoint.root == EMPTY_ROOT
    assert w.add_checkpoint(request_body(log.note(), 0, [])).status == 200


def test_a_fork_is_refused_and_its_evidence_kept(setup) -> None:
    log, state, vkey, w, url = setup
    log.grow(6)
    client = WitnessClient(url, vkey=vkey)
    client.add_checkpoint(log.note(), 0, [])
    held = client.latest(ORIGIN)
    # the log signs another history of the same size: a fork
    fork = FakeLog(hashes=[*log.hashes[:5]])
    fork.grow(1, tag="forged ")
    r = post(url, request_body(fork.note(), 6, []))
    assert r.status_code == 422
    # and a longer history that does not extend the cosigned one
    fork.grow(4, tag="forged ")
    r = post(url, request_body(fork.note(), 6, fork.proof(6)))
    assert r.status_code == 422
    files = sorted((state / "forks").iterdir())
    assert len(files) == 2
    docs = [json.loads(p.read_text()) for p in files]
    assert {d["reason"] for d in docs} == {"fork: same size, another root", "inconsistent proof"}
    for d in docs:
        assert d["origin"] == ORIGIN and d["held"].encode() == held
        # both checkpoints are the log's own signed statements: the evidence stands alone
        held_text, _ = open_note(d["held"].encode(), verifiers(log, vkey))
        offered_text, _ = open_note(
            d["offered"].encode(), [NoteVerifier.from_vkey(log.signer.vkey)]
        )
        assert int(held_text.split("\n")[1]) <= int(offered_text.split("\n")[1])
        assert offered_text != held_text
    # the witness still holds the history it cosigned, and goes on with it
    assert client.latest(ORIGIN) == held
    log.grow(2)
    client.add_checkpoint(log.note(), 6, log.proof(6))


def test_a_rollback_is_refused(setup) -> None:
    log, state, vkey, w, url = setup
    log.grow(9)
    assert post(url, request_body(log.note(), 0, [])).status_code == 200
    held = WitnessClient(url).latest(ORIGIN)
    assert post(url, request_body(log.note(5), 9, [])).status_code == 400  # old above size
    assert post(url, request_body(log.note(5), 5, [])).status_code == 409  # not its size
    assert post(url, request_body(log.note(5), 0, [])).status_code == 409
    assert WitnessClient(url).latest(ORIGIN) == held


def test_concurrent_requests_from_one_old_size_are_not_both_cosigned(setup) -> None:
    """Serialised per log: of requests racing from the same old size, one wins, the others
    get 409 (the spec's rollback race)."""
    log, state, vkey, w, url = setup
    log.grow(2)
    assert post(url, request_body(log.note(), 0, [])).status_code == 200
    base = 2
    for round_ in range(5):
        log.grow(12)
        sizes = [base + 1 + i for i in range(0, 12, 2)]
        barrier = threading.Barrier(len(sizes))
        codes: dict[int, int] = {}

        def send(size: int, base: int, barrier: threading.Barrier, codes: dict) -> None:
            body = request_body(log.note(size), base, log.proof(base, size))
            barrier.wait()
            codes[size] = post(url, body).status_code

        threads = [threading.Thread(target=send, args=(s, base, barrier, codes)) for s in sizes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [s for s, c in codes.items() if c == 200]
        assert len(winners) == 1, (round_, codes)
        assert all(c == 409 for s, c in codes.items() if s != winners[0])
        base = winners[0]
        assert w.held(ORIGIN).checkpoint.size == base
        log.hashes = log.hashes[:base]  # go on from the size the witness holds


def test_client_submit_follows_a_409(setup) -> None:
    log, state, vkey, w, url = setup
    log.grow(3)
    client = WitnessClient(url, vkey=vkey)
    client.add_checkpoint(log.note(), 0, [])
    log.grow(4)
    lines = client.submit(log.note(), 0, lambda old: log.proof(old))
    assert CosignatureVerifier.from_vkey(vkey).verify(log.body(), lines[0]) is not None
    # a client pinning another witness key takes no cosignature from this one
    with pytest.raises(NoteError):  # a log key is not a cosigner's key
        WitnessClient(url, vkey=NoteSigner("x", SigningKey(b"\x01" * 32)).vkey)
    other = CosignatureSigner("witness.test/w1", SigningKey(b"\x01" * 32)).vkey
    log.grow(1)
    with pytest.raises(WitnessRefused, match="no valid cosignature"):
        WitnessClient(url, vkey=other).add_checkpoint(log.note(), 7, log.proof(7))
    assert add_signatures(log.note(), lines).count(b"witness.test/w1") == 1
    unreachable = WitnessClient("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(WitnessRefused):
        unreachable.latest(ORIGIN)


def test_a_damaged_or_exposed_state_is_refused(tmp_path: Path) -> None:
    log = FakeLog()
    state, vkey = make_state(tmp_path, log)
    w = Witness(state, clock=Clock())
    log.grow(2)
    assert w.add_checkpoint(request_body(log.note(), 0, [])).status == 200
    held = next((state / "checkpoints").iterdir())
    held.write_bytes(held.read_bytes().replace(b"\n2\n", b"\n3\n"))
    with pytest.raises(StateError, match="cosignature|damaged"):
        Witness(state)  # never starts over from an empty state
    held.write_bytes(b"garbage")
    with pytest.raises(StateError):
        Witness(state)
    os.chmod(state / "witness.key", 0o640)
    with pytest.raises(StateError, match="mode 0640"):
        Witness(state)
