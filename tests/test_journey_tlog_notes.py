"""C2SP signed-note, tlog-checkpoint and tlog-cosignature: byte compatibility with the
specifications' and the reference implementation's published examples."""

from __future__ import annotations

import base64

import pytest
from nacl.signing import SigningKey

from tlog.checkpoint import Checkpoint, CheckpointError
from tlog.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_time,
    signed_message,
    verifier_from_vkey,
)
from tlog.merkle import EMPTY_ROOT
from tlog.note import (
    NoteBadSignature,
    NoteError,
    NoteSigner,
    NoteUnverified,
    NoteVerifier,
    add_signatures,
    open_note,
    parse_signature_line,
    sign_note,
    split_note,
)

# golang.org/x/mod/sumdb/note, note_test.go (TestNewVerifier, TestSign, TestOpen)
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLo"
    "x33WWd1RvMc+QQ=\n"
)

# c2sp.org/signed-note, "Verifier keys", Example
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXm"
    "RKuwHjG1Yu72IneyaQM=\n"
).encode()

# c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, the examples
SOFA_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_COSIG = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJs"
    "X3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


def peter_signer() -> NoteSigner:
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])  # 0x01 || the Ed25519 seed
    assert raw[0] == 0x01
    return NoteSigner("PeterNeumann", SigningKey(raw[1:]))


def test_sign_gives_the_reference_bytes() -> None:
    signer = peter_signer()
    assert signer.vkey == PETER_VKEY
    assert signer.key_id == 0xC74F20A3
    assert sign_note(TEXT, [signer]) == (TEXT + "\n" + PETER_SIG).encode()


def test_open_like_the_reference() -> None:
    peter, enoch = NoteVerifier.from_vkey(PETER_VKEY), NoteVerifier.from_vkey(ENOCH_VKEY)
    note = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    assert open_note(note, [peter]) == (TEXT, ["PeterNeumann"])
    assert open_note(note, [peter, enoch]) == (TEXT, ["PeterNeumann", "EnochRoot"])
    with pytest.raises(NoteUnverified):
        open_note(note, [])
    with pytest.raises(NoteError, match="ambiguous"):
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), [enoch, peter, enoch])
    with pytest.raises(NoteError):  # too many signatures
        open_note((TEXT + "\n" + PETER_SIG * 101).encode(), [peter])
    bad = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteBadSignature):
        open_note(bad.encode(), [peter])
    # duplicated signatures are verified once; an unknown key's bad signature is ignored
    dup = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert open_note(dup.encode(), [peter]) == (TEXT, ["PeterNeumann"])
    for msg in (
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
        "XgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ):
        with pytest.raises(NoteError):
            open_note(msg.encode(), [peter])
    with pytest.raises(NoteError):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [peter])


def test_vkey_manglings_are_refused() -> None:
    """As note_test.go's TestNewVerifier: every substring and every byte+1 is refused."""
    assert NoteVerifier.from_vkey(PETER_VKEY).vkey == PETER_VKEY
    b = PETER_VKEY
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i != 0 or j != len(b):
                with pytest.raises(NoteError):
                    NoteVerifier.from_vkey(b[i:j])
    for i in range(len(b)):
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :])
    # github.com/transparency-dev/formats note/note_cosigv1_test.go: a "+" in the key itself
    plus = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    assert NoteVerifier.from_vkey(plus).vkey == plus
    for bad in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(bad)


def test_the_signed_note_spec_example_verifies() -> None:
    v = NoteVerifier.from_vkey(SPEC_VKEY)
    assert open_note(SPEC_NOTE, [v]) == ("This is an example message.\n", ["example.com/foo"])
    with pytest.raises(NoteBadSignature):
        open_note(SPEC_NOTE.replace(b"This is", b"This was"), [v])


def test_the_checkpoint_spec_example_parses_and_round_trips() -> None:
    cp = Checkpoint.parse(SOFA_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.body() == SOFA_BODY
    ext = Checkpoint.parse(SOFA_BODY + "ext one\n")
    assert ext.extensions == ("ext one",) and ext.body() == SOFA_BODY + "ext one\n"
    for bad in (
        "example.com/x\n12\n",  # two lines
        "example.com/x\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "example.com/x\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/x\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # no padding
        "example.com/x\n12\nAAAA\n",  # not 32 bytes
        "example.com/x\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",  # empty ext
        "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
        "example.com/x\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
    ):
        with pytest.raises(CheckpointError):
            Checkpoint.parse(bad)
    assert Checkpoint("o", 0, EMPTY_ROOT).empty_root_ok
    assert not Checkpoint("o", 0, b"\x01" * 32).empty_root_ok


def test_the_cosignature_spec_example_decodes() -> None:
    """The spec's witness.example.com/w1 cosignature: key id, the timestamp of its
    "time 1679315147" example message, and a 64-byte Ed25519 signature."""
    s = parse_signature_line(SOFA_COSIG)
    assert s.name == "witness.example.com/w1"
    assert s.key_id == 0x8D66CF3F
    assert len(s.sig) == 8 + 64
    assert cosignature_time(SOFA_COSIG) == 1679315147
    assert signed_message(SOFA_BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    # github.com/transparency-dev/formats note/note_cosigv1_test.go: a timestamp, and a
    # native cosignature/v1 vkey (type 0x04)
    line = (
        "— x ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWW"
        "OworDcFiEBYJXORmnFBOBA=="
    )
    assert cosignature_time(line) == 1727964367
    remora = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    v = CosignatureVerifier.from_vkey(remora)
    assert v.vkey == remora and v.key_id == 0xDA77ADE7
    assert isinstance(verifier_from_vkey(remora), CosignatureVerifier)
    assert isinstance(verifier_from_vkey(PETER_VKEY), NoteVerifier)
    with pytest.raises(NoteError):
        CosignatureVerifier.from_vkey(PETER_VKEY)  # a type 0x01 key is not a cosigner's
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(remora)


def test_cosign_verify_and_open_together() -> None:
    log = NoteSigner("example.com/log", SigningKey(b"\x01" * 32))
    witness = CosignatureSigner("witness.example/w1", SigningKey(b"\x02" * 32))
    body = Checkpoint("example.com/log", 5, b"\x07" * 32).body()
    note = sign_note(body, [log])
    line = witness.cosign(body, 1700000000)
    assert witness.verifier.verify(body, line) == 1700000000
    assert witness.verifier.verify(body.replace("5", "6", 1), line) is None
    assert witness.verifier.verify(body, line.replace("witness.example/w1", "w2")) is None
    other = CosignatureSigner("witness.example/w1", SigningKey(b"\x03" * 32))
    assert other.verifier.verify(body, line) is None
    # the cosignature key is distinct from the same key used as a note key (type 0x04)
    same_key_as_note = NoteSigner("witness.example/w1", SigningKey(b"\x02" * 32))
    assert same_key_as_note.key_id != witness.key_id
    cosigned = add_signatures(note, [line, line + "\n"])
    assert cosigned.count(line.encode()) == 1
    verifiers = [NoteVerifier.from_vkey(log.vkey), CosignatureVerifier.from_vkey(witness.vkey)]
    assert open_note(cosigned, verifiers) == (body, ["example.com/log", "witness.example/w1"])
    # a cosignature over another time than the one it carries fails
    forged = parse_signature_line(line)
    tampered = bytearray(base64.b64decode(line.split(" ")[2]))
    tampered[11] ^= 1  # the timestamp's last byte
    bad_line = f"— {forged.name} {base64.b64encode(bytes(tampered)).decode()}"
    assert witness.verifier.verify(body, bad_line) is None
    with pytest.raises(NoteBadSignature):
        open_note(add_signatures(note, [bad_line]), verifiers)
    text, sigs = split_note(cosigned)
    assert text == body and [s.name for s in sigs] == ["example.com/log", "witness.example/w1"]


def test_open_cosigned_asks_for_the_log_and_a_quorum_of_witnesses() -> None:
    from tlog.witnessed import NotWitnessed, open_cosigned

    log = NoteSigner("bwv-dock/0123456789abcdef", SigningKey(b"\x01" * 32))
    w1 = CosignatureSigner("w1.example/w", SigningKey(b"\x02" * 32))
    w2 = CosignatureSigner("w2.example/w", SigningKey(b"\x03" * 32))
    body = Checkpoint(log.name, 3, b"\x07" * 32).body()
    note = sign_note(body, [log])
    one = add_signatures(note, [w1.cosign(body, 1700000001)])
    both = add_signatures(one, [w2.cosign(body, 1700000002)])
    got = open_cosigned(both, log.vkey, [w1.vkey, w2.vkey], quorum=2)
    assert got.checkpoint.size == 3 and got.text == body
    assert got.cosigned == {"w1.example/w": 1700000001, "w2.example/w": 1700000002}
    assert open_cosigned(one, log.vkey, [w1.vkey, w2.vkey], quorum=1).cosigned == {
        "w1.example/w": 1700000001
    }
    with pytest.raises(NotWitnessed):
        open_cosigned(one, log.vkey, [w1.vkey, w2.vkey], quorum=2)
    with pytest.raises(NotWitnessed):
        open_cosigned(note, log.vkey, [w1.vkey], quorum=1)
    assert open_cosigned(note, log.vkey, [], quorum=0).checkpoint.size == 3
    # cosigned by the witness, but not signed by the log: refused
    impostor = NoteSigner(log.name, SigningKey(b"\x04" * 32))
    forged = add_signatures(sign_note(body, [impostor]), [w1.cosign(body, 1700000001)])
    with pytest.raises(NoteError, match="log"):
        open_cosigned(forged, log.vkey, [w1.vkey], quorum=1)
    # a cosignature of another checkpoint does not count
    other = Checkpoint(log.name, 4, b"\x08" * 32).body()
    moved = add_signatures(note, [w1.cosign(other, 1700000001)])
    with pytest.raises(NoteError):
        open_cosigned(moved, log.vkey, [w1.vkey], quorum=1)
