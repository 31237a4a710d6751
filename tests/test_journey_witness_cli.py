"""`bwv witness`: keygen, vkey, add-log, latest, serve's refusals: one line, exit 0/1/2."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from crypto.identity import key_id_of
from tests.witness_helpers import ORIGIN, FakeLog
from tlog.cosignature import CosignatureVerifier
from tlog.note import NoteVerifier
from witness.client import request_body
from witness.core import Witness
from witness.state import load_logs


def bwv(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def one_line_error(err: str) -> bool:
    return err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_keygen_vkey_add_log_latest(tmp_path: Path) -> None:
    state = tmp_path / "w"
    code, out, err = bwv("witness", "keygen", "--state", str(state), "--name", "court.example/w1")
    assert code == 0, err
    assert (state / "witness.key").stat().st_mode & 0o777 == 0o600
    code, vkey, _ = bwv("witness", "vkey", "--state", str(state))
    assert code == 0
    v = CosignatureVerifier.from_vkey(vkey.strip())
    assert v.name == "court.example/w1" and vkey.strip() in out
    # a second keygen never replaces the key
    code, _, err = bwv("witness", "keygen", "--state", str(state), "--name", "x")
    assert code == 2 and one_line_error(err) and "not replacing" in err
    # add-log from the dock's public key: origin bwv-dock/<key id>, the dock key's vkey
    dock_key = SigningKey(b"\x07" * 32)
    pub = bytes(dock_key.verify_key)
    (tmp_path / "dock.pub").write_text(pub.hex() + "\n")
    code, out, err = bwv(
        "witness", "add-log", "--state", str(state), "--dock-pub", str(tmp_path / "dock.pub")
    )
    assert code == 0, err
    origin = f"bwv-dock/{key_id_of(pub)}"
    assert load_logs(state) == {origin: [NoteVerifier(origin, pub).vkey]}
    log = FakeLog()
    code, _, err = bwv(
        "witness", "add-log", "--state", str(state), "--origin", ORIGIN, "--vkey", log.signer.vkey
    )
    assert code == 0, err
    code, _, err = bwv(
        "witness", "add-log", "--state", str(state), "--origin", ORIGIN, "--vkey", "not-a-vkey"
    )
    assert code == 2 and one_line_error(err)
    # latest: none yet is exit 1; then the cosigned checkpoint, from the state
    code, _, err = bwv("witness", "latest", "--state", str(state), "--log", ORIGIN)
    assert code == 1 and one_line_error(err)
    log.grow(3)
    assert Witness(state).add_checkpoint(request_body(log.note(), 0, [])).status == 200
    code, out, err = bwv("witness", "latest", "--state", str(state), "--log", ORIGIN)
    assert code == 0 and out.startswith(log.body()) and "— court.example/w1 " in out
    code, _, err = bwv("witness", "latest", "--url", "http://127.0.0.1:9", "--log", ORIGIN)
    assert code == 2 and one_line_error(err)


def test_serve_refuses_an_exposed_key_or_a_missing_state(tmp_path: Path) -> None:
    state = tmp_path / "w"
    code, _, err = bwv("witness", "serve", "--state", str(state), "--listen", "127.0.0.1:0")
    assert code == 2 and one_line_error(err) and "keygen" in err
    assert bwv("witness", "keygen", "--state", str(state), "--name", "w")[0] == 0
    os.chmod(state / "witness.key", 0o644)
    code, _, err = bwv("witness", "serve", "--state", str(state), "--listen", "127.0.0.1:0")
    assert code == 2 and one_line_error(err) and "mode 0644" in err
    code, _, err = bwv("witness", "serve", "--state", str(state), "--listen", "nowhere")
    assert code == 2 and "Traceback" not in err
