"""Issue 8, point 8: every ``bwv`` subcommand, driven with bad input, answers with one clear
error line on stderr and exit 2, never a traceback, never a hang.

Each command runs as the user runs it (a subprocess of ``bwv``), with the Raspberry Pi's
libraries hidden as on a desktop. To cover a new command, add rows to ``ROWS``: the command as
``bwv --help`` names it, its arguments (``{name}`` stands for a prepared bad input from
``inputs``; add new ones there), and words the error line must hold. ``--json`` in the
arguments also requires ``{"error": ...}`` on stdout. ``test_every_command_has_a_row`` fails
until every command has at least one row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from bwv.cli import main as bwv_main

# `bwv` as a user runs it, on a machine without the camera's hardware libraries
BOOT = (
    "import sys; sys.modules.update(dict.fromkeys(('RPi', 'RPi.GPIO', 'picamera2'), None)); "
    "from bwv.cli import main; main(prog_name='bwv')"
)
SMALL_ORDER = "01" + "00" * 31  # a low-order point: neither a usable X25519 nor Ed25519 key


@dataclass(frozen=True)
class Row:
    command: str  # as `bwv --help` names it: "config check", "dock status", "sim raid"
    args: tuple[str, ...]  # after `bwv`; "{name}" is a path from `inputs`
    says: str  # the error line holds this
    code: int = 2

    @property
    def id(self) -> str:
        return " ".join(self.args)


ROWS = [
    # -- configuration files: not UTF-8, non-finite or huge numbers, a FIFO, a folder
    Row("config check", ("config", "check", "{latin1}"), "not UTF-8: byte 0xe9 at offset 16"),
    Row(
        "config check",
        ("config", "check", "{inf_low_space}"),
        "storage.low_space_minutes: must be a finite number",
    ),
    Row(
        "config check",
        ("config", "check", "{inf_reminder}"),
        "controls.reminder_interval_s: must be a finite number",
    ),
    Row(
        "config check",
        ("config", "check", "{huge_reminder}"),
        "controls.reminder_interval_s: must be between",
    ),
    Row("config check", ("config", "check", "{nan_pre_record}"), "pre_record.seconds"),
    Row("config check", ("config", "check", "{fifo}"), "not a regular file"),
    Row(
        "config check",
        ("config", "check", "{plain_http_dock}"),
        "dock.url: must start with https://",
    ),
    Row("config check", ("config", "check", "{missing}"), "cannot read"),
    Row("config show", ("config", "show", "--config", "{latin1}"), "not UTF-8"),
    Row("config show", ("config", "show", "--json", "--config", "{fifo}"), "not a regular file"),
    Row("status", ("status", "--config", "{latin1}"), "not UTF-8"),
    Row("status", ("status", "--config", "{inf_low_space}"), "storage.low_space_minutes"),
    Row("status", ("status", "--json", "--config", "{fifo}"), "not a regular file"),
    Row("selftest", ("selftest", "--config", "{latin1}"), "not UTF-8"),
    Row("selftest", ("selftest", "--config", "{fifo}"), "not a regular file"),
    Row("selftest", ("selftest", "--config", "{inf_reminder}"), "controls.reminder_interval_s"),
    Row("selftest", ("selftest", "--json", "--config", "{latin1}"), "not UTF-8"),
    Row("run", ("run", "--config", "{latin1}"), "not UTF-8"),
    Row("run", ("run", "--config", "{fifo}"), "not a regular file"),
    Row("run", ("run", "--config", "{inf_low_space}"), "storage.low_space_minutes"),
    Row("run", ("run", "--config", "{storage_is_a_file}"), "is not a folder"),
    Row("run", ("run", "--config", "{device_config}"), "python3-picamera2"),
    Row("run", ("run", "--config", "{device_config}"), "install.sh"),
    Row(
        "provision",
        ("provision", "--config", "{latin1}", "--agency-pub", "{agency_pub}"),
        "not UTF-8",
    ),
    Row(
        "provision",
        ("provision", "--config", "{device_config}", "--agency-pub", "{small_order}"),
        "not a usable X25519 public key",
    ),
    Row(
        "provision",
        (
            "provision",
            "--config",
            "{no_tpm_config}",
            "--agency-pub",
            "{agency_pub}",
            "--key-store",
            "tpm",
        ),
        "TPM",
    ),
    Row("config check", ("config", "check", "{bad_tcti}"), "keys.tpm_tcti: must be empty"),
    Row(
        "dock init",
        ("dock", "init", "--store", "{new_dir}", "--tpm-ca", "{afile}"),
        "holds no PEM certificate",
    ),
    Row(
        "dock serve",
        ("dock", "serve", "--store", "{new_dir}", "--tpm-ca", "{afile}"),
        "holds no PEM certificate",
    ),
    # -- the simulator: its configuration, its own key files
    Row(
        "sim raid",
        ("sim", "raid", "--out", "{new_dir}", "--key-store", "vault"),
        "Invalid value for '--key-store'",
    ),
    Row("sim raid", ("sim", "--config", "{latin1}", "raid", "--out", "{new_dir}"), "not UTF-8"),
    Row(
        "sim raid",
        ("sim", "--config", "{inf_reminder}", "raid", "--out", "{new_dir}"),
        "controls.reminder_interval_s",
    ),
    Row(
        "sim record",
        ("sim", "--state", "{state_with_bad_key}", "record", "--seconds", "1"),
        "device.key",
    ),
    Row(
        "sim record",
        ("sim", "--config", "{fifo}", "--state", "{new_dir}", "record"),
        "not a regular file",
    ),
    Row(
        "sim record",
        ("sim", "--state", "{new_dir}", "record", "--seconds", "nan"),
        "not a finite number",
    ),
    Row(
        "sim record",
        ("sim", "--state", "{new_dir}", "record", "--seconds", "inf"),
        "not a finite number",
    ),
    # -- verify: nothing checkable, unreadable inputs, unusable keys
    Row("verify", ("verify", "{empty_dir}"), "nothing checkable here"),
    Row("verify", ("verify", "{docs_dir}"), "nothing checkable here"),
    Row("verify", ("verify", "{lone_mp4}"), "nothing checkable here"),
    Row(
        "verify", ("verify", "--device-pub", "{device_pub}", "{lone_mp4}"), "nothing checkable here"
    ),
    Row("verify", ("verify", "--json", "{empty_dir}"), "nothing checkable here"),
    Row("verify", ("verify", "{fifo}"), "not a regular file"),
    Row(
        "verify",
        ("verify", "--device-pub", "{small_order}", "{outbox}"),
        "not a usable Ed25519 public key",
    ),
    Row("verify", ("verify", "--json", "{outbox}"), "--device-pub is needed"),
    Row("verify", ("verify", "--json", "{missing}"), "does not exist"),
    # -- the dock's commands on what is not a dock store
    Row("dock status", ("dock", "status", "--store", "{empty_dir}"), "not a dock store"),
    Row("dock status", ("dock", "status", "--json", "--store", "{empty_dir}"), "not a dock store"),
    Row(
        "dock status",
        ("dock", "status", "--store", "{corrupt_store}"),
        "cannot open the dock index",
    ),
    Row(
        "dock token",
        ("dock", "token", "--store", "{empty_dir}", "--device", "cam-1"),
        "not a dock store",
    ),
    Row(
        "dock revoke",
        ("dock", "revoke", "--store", "{empty_dir}", "--reason", "lost", "cam1"),
        "not a dock store",
    ),
    Row(
        "dock export",
        ("dock", "export", "--store", "{empty_dir}", "rec1", "--out", "{new_dir}"),
        "not a dock store",
    ),
    Row(
        "dock account add",
        ("dock", "account", "add", "--store", "{empty_dir}", "--role", "auditor", "ann"),
        "not a dock store",
    ),
    Row(
        "dock account list",
        ("dock", "account", "list", "--json", "--store", "{empty_dir}"),
        "not a dock store",
    ),
    Row(
        "dock account disable",
        ("dock", "account", "disable", "--store", "{corrupt_store}", "ann"),
        "cannot open the dock index",
    ),
    Row(
        "dock account passwd",
        ("dock", "account", "passwd", "--store", "{empty_dir}", "ann"),
        "not a dock store",
    ),
    Row("dock serve", ("dock", "serve", "--store", "{afile}"), "is a file"),
    Row("dock init", ("dock", "init", "--store", "{afile}"), "is a file"),
    Row("dock init", ("dock", "init", "--store", "{new_dir}", "--witness", "x"), "URL=VKEY"),
    Row(
        "dock serve",
        ("dock", "serve", "--store", "{new_dir}", "--listen", "nonsense"),
        "expected HOST:PORT",
    ),
    # -- many docks: the shared store's options (dock/backends.py); no secret on a command line
    Row("dock serve", ("dock", "serve", "--store", "s3://evidence"), "needs --state DIR"),
    Row(
        "dock serve",
        (
            "dock",
            "serve",
            "--store",
            "s3://evidence",
            "--state",
            "{new_dir}",
            "--index",
            "postgresql://bwv:hunter2@db.example/bwv",
        ),
        "the URL holds a password",
    ),  # fmt: skip
    Row(
        "dock serve",
        (
            "dock",
            "serve",
            "--store",
            "s3://evidence",
            "--state",
            "{new_dir}",
            "--index",
            "mysql://db.example/bwv",
        ),
        "give a PostgreSQL URL",
    ),  # fmt: skip
    Row(
        "dock serve",
        ("dock", "serve", "--store", "{new_dir}", "--index", "postgresql://db.example/bwv"),
        "go with --store s3://",
    ),
    Row(
        "dock serve",
        ("dock", "serve", "--store", "s3://Not_A_Bucket", "--state", "{new_dir}"),
        "--store:",
    ),
    # -- the agency's key pair: never replaced, never into a file
    Row(
        "agency keygen",
        ("agency", "keygen", "--out", "{agency_dir}"),
        "agency.key exists: not replacing",
    ),
    Row("agency keygen", ("agency", "keygen", "--out", "{afile}"), "is a file"),
    Row(
        "sim raid", ("sim", "raid", "--out", "{new_dir}", "--record", "inf"), "not a finite number"
    ),
    Row("sim console", ("sim", "console", "--out", "{docs_dir}"), "holds no raid"),
    Row("sim console", ("sim", "console", "--listen", "0.0.0.0:8445"), "this machine only"),
    # -- the time-stamping authority (tsa/)
    Row("tsa init", ("tsa", "init", "--state", "{afile}"), "is a file"),
    Row("tsa init", ("tsa", "init", "--json", "--state", "{docs_dir}"), "not a TSA state folder"),
    Row("tsa serve", ("tsa", "serve", "--state", "{empty_dir}"), "not a TSA state folder"),
    Row("tsa serve", ("tsa", "serve", "--state", "{afile}"), "is a file"),
    Row("tsa serve", ("tsa", "serve", "--state", "{new_dir}", "--listen", "x"), "HOST:PORT"),
    Row("tsa check", ("tsa", "check", "--url", "http://127.0.0.1:9/", "--ca", "{afile}"), "PEM"),
    # -- the witness: its state folder, its key, the logs it is given
    Row("witness keygen", ("witness", "keygen", "--state", "{afile}", "--name", "w"), "is a file"),
    Row(
        "witness keygen",
        ("witness", "keygen", "--state", "{new_dir}", "--name", "a b"),
        "is not a key name",
    ),
    Row("witness vkey", ("witness", "vkey", "--state", "{empty_dir}"), "no witness key"),
    Row(
        "witness add-log",
        ("witness", "add-log", "--state", "{empty_dir}", "--origin", "o", "--vkey", "x"),
        "malformed verifier key",
    ),
    Row(
        "witness add-log",
        ("witness", "add-log", "--state", "{empty_dir}", "--dock-pub", "{small_order}"),
        "not a usable Ed25519 public key",
    ),
    Row("witness serve", ("witness", "serve", "--state", "{empty_dir}"), "no witness key"),
    Row(
        "witness serve",
        ("witness", "serve", "--state", "{new_dir}", "--listen", "nonsense"),
        "expected HOST:PORT",
    ),
    Row(
        "witness latest",
        ("witness", "latest", "--state", "{empty_dir}", "--log", "o"),
        "no witness key",
    ),
    Row(
        "witness latest",
        ("witness", "latest", "--url", "http://127.0.0.1:9", "--log", "o"),
        "witness http://127.0.0.1:9",
    ),
]


def _write(path: Path, data: bytes | str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return str(path)


def _bad_key_state(state: Path) -> str:
    keys = state / "keys"
    keys.mkdir(parents=True)
    _write(keys / "device.key", "zz" * 32 + "\n")
    (keys / "device.key").chmod(0o600)
    return str(state)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Bad inputs by name (paths), made once."""
    d = tmp_path_factory.mktemp("bad")
    storage = d / "var"
    good = (
        f'device_id = "cam-1"\n[storage]\ndir = "{storage}"\n[keys]\n'
        f'device_key = "{storage}/keys/device.key"\n'
        f'agency_public_key = "{storage}/keys/agency.pub"\n'
        f'dock_public_key = "{storage}/keys/dock.pub"\n'
    )
    os.mkfifo(d / "fifo")
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey

    out = {
        "latin1": _write(d / "latin1.toml", b'device_id = "cam\xe9ra"\n'),
        "inf_low_space": _write(d / "inf1.toml", "[storage]\nlow_space_minutes = inf\n"),
        "inf_reminder": _write(d / "inf2.toml", "[controls]\nreminder_interval_s = inf\n"),
        "huge_reminder": _write(d / "huge.toml", "[controls]\nreminder_interval_s = 1e300\n"),
        "plain_http_dock": _write(d / "http.toml", '[dock]\nurl = "http://dock.local:8443"\n'),
        "nan_pre_record": _write(d / "nan.toml", "[pre_record]\nseconds = nan\n"),
        "fifo": str(d / "fifo"),
        "missing": str(d / "no-such.toml"),
        "afile": _write(d / "afile", "not a folder\n"),
        "device_config": _write(d / "device.toml", good),
        "no_tpm_config": _write(  # a TPM that is not there: nothing listens on port 9
            d / "no-tpm.toml", good + 'tpm_tcti = "swtpm:host=127.0.0.1,port=9"\n'
        ),
        "bad_tcti": _write(d / "tcti.toml", '[keys]\ntpm_tcti = "tpm0"\n'),
        "storage_is_a_file": _write(
            d / "storage.toml", good.replace(f'dir = "{storage}"', f'dir = "{d / "afile"}"')
        ),
        "agency_pub": _write(d / "agency.pub", bytes(PrivateKey.generate().public_key).hex()),
        "small_order": _write(d / "small.pub", SMALL_ORDER + "\n"),
        "device_pub": _write(d / "device.pub", bytes(SigningKey.generate().verify_key).hex()),
        "empty_dir": str(d / "empty"),
        "docs_dir": _write(d / "docs" / "README.md", "# notes\n").rsplit("/", 1)[0],
        "lone_mp4": _write(d / "clip.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(64)),
        "outbox": _write(
            d / "outbox" / "chain" / "000000000000.manifest.json",
            '{"record":{"type":"manifest"}}\n',
        ).rsplit("/", 2)[0],
        "corrupt_store": _write(d / "store" / "index.sqlite3", b"\x13" * 4096).rsplit("/", 1)[0],
        "state_with_bad_key": _bad_key_state(d / "state"),
        "agency_dir": _write(d / "agency" / "agency.key", "22" * 32 + "\n").rsplit("/", 1)[0],
    }
    (d / "empty").mkdir()
    (d / "store" / "dock.key").touch(mode=0o600)
    _write(d / "store" / "dock.key", "11" * 32 + "\n")
    return out


def _args(row: Row, inputs: dict[str, str], tmp_path: Path) -> list[str]:
    names = {**inputs, "new_dir": str(tmp_path / "new")}
    return [a.format(**names) if a.startswith("{") else a for a in row.args]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_gives_one_error_line_and_exit_2(row, inputs, tmp_path):
    try:
        p = subprocess.run(
            [sys.executable, "-c", BOOT, *_args(row, inputs, tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"bwv {row.id} hangs")
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    assert p.returncode == row.code, (p.returncode, p.stdout, p.stderr)
    said = [
        line
        for line in p.stderr.splitlines()
        if line.strip() and not line.startswith(("Usage: ", "Try '"))
    ]
    assert len(said) == 1 and said[0].startswith("Error: "), p.stderr
    assert row.says in said[0], said[0]
    if "--json" in row.args:  # JSON on stdout on this path too
        assert row.says in json.dumps(json.loads(p.stdout), ensure_ascii=False), p.stdout


def _leaf_commands(group: click.Group, prefix: str = "") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out |= _leaf_commands(cmd, f"{prefix}{name} ")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_every_command_has_a_row():
    missing = _leaf_commands(bwv_main) - {r.command for r in ROWS}
    assert not missing, f"add rows for: {sorted(missing)}"


def test_status_with_storage_dir_a_file_reports_a_fault_not_a_traceback(inputs, tmp_path):
    p = subprocess.run(
        [sys.executable, "-c", BOOT, "status", "--config", inputs["storage_is_a_file"]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr  # checked: a fault
    assert "Traceback" not in p.stdout + p.stderr
    assert f"storage: {inputs['afile']} is not a folder" in p.stdout
