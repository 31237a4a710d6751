"""The dock's log on the command line: ``bwv dock init``/``serve`` take the witnesses and the
TSA (kept in the store), ``bwv dock status`` says what the log lacks, and a command run on
the store with no dock running issues the checkpoint its custody entries need."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.dock_cmd import dock
from dock.checkpoints import latest_checkpoint, load_log_config
from dock.holdings import open_store
from tlog.cosignature import CosignatureSigner
from tlog.note import NoteVerifier, open_note

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def run(*args: str):
    return CliRunner().invoke(dock, list(args))


def test_init_keeps_the_witnesses_and_tsa_and_prints_what_a_witness_needs(tmp_path):
    store = tmp_path / "store"
    w = CosignatureSigner("watchdog.example/w1", SigningKey.generate()).vkey
    ca = tmp_path / "ca.pem"
    ca.write_bytes(CA)
    r = run(
        "init", "--store", str(store), "--witness", f"http://127.0.0.1:9/={w}",
        "--tsa", "http://127.0.0.1:9/tsa", "--tsa-ca", str(ca),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in r.output.splitlines()}
    origin, vkey = lines["log origin"], lines["log key"]
    assert origin.startswith("bwv-dock/") and vkey.startswith(origin + "+")
    NoteVerifier.from_vkey(vkey)  # a signed-note key a witness can add as it is
    assert "watchdog.example/w1 http://127.0.0.1:9" in r.output
    cfg = load_log_config(store)
    assert [x.vkey for x in cfg.witnesses] == [w] and cfg.tsa_url == "http://127.0.0.1:9/tsa"
    assert cfg.tsa_ca_pem == CA
    # run again without them: kept
    assert run("init", "--store", str(store)).exit_code == 0
    assert load_log_config(store).witnesses == cfg.witnesses


def test_bad_witness_or_tsa_options_are_one_line_refusals(tmp_path):
    store = tmp_path / "store"
    r = run("init", "--store", str(store), "--witness", "not-a-witness")
    assert r.exit_code == 2 and "URL=VKEY" in r.output and "Traceback" not in r.output
    r = run("init", "--store", str(store), "--tsa", "http://127.0.0.1:9/")
    assert r.exit_code == 2 and "--tsa-ca" in r.output


def test_status_says_the_log_is_unwitnessed_and_untimestamped(tmp_path):
    store = tmp_path / "store"
    assert run("init", "--store", str(store)).exit_code == 0
    assert run("token", "--store", str(store), "--device", "cam-1").exit_code == 0
    r = run("status", "--store", str(store))
    assert "no witness configured: checkpoints are signed by this dock alone" in r.output
    assert "no TSA configured: checkpoints carry no trusted time" in r.output
    data = json.loads(run("status", "--store", str(store), "--json").output)
    assert data["log"]["unwitnessed"] and data["log"]["untimestamped"]


def test_a_command_run_with_no_dock_running_issues_the_checkpoint(tmp_path):
    store = tmp_path / "store"
    run("init", "--store", str(store))
    assert run("token", "--store", str(store), "--device", "cam-1").exit_code == 0
    s = open_store(Path(store))
    try:
        leaves = s.log_size()
        pub = bytes(s._key.verify_key)
        origin = f"bwv-dock/{s.dock_key_id}"
    finally:
        s.close()
    cp = latest_checkpoint(store)
    assert leaves == 1 and cp is not None and cp.size == leaves  # the token_issued entry
    open_note(cp.note, [NoteVerifier(origin, pub)])


def test_a_damaged_log_configuration_is_one_line_not_a_traceback(tmp_path):
    store = tmp_path / "store"
    run("init", "--store", str(store))
    (store / "log" / "config.json").write_text("{not json")
    r = run("init", "--store", str(store))
    assert r.exit_code == 2 and "config.json: unreadable" in r.output
    assert "Traceback" not in r.output
    r = run("status", "--store", str(store))
    assert r.exit_code == 0 and "config.json: unreadable" in r.output
