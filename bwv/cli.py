"""The ``bwv`` command."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from bwv import __version__
from bwv.errors import CannotCheck, FiniteFloat, GuardedGroup, bad_configuration
from capture.config import Config, ConfigError, load


def _load_config(path: Path | None, overrides: dict[str, object]) -> Config:
    try:
        return load(path, overrides)
    except ConfigError as exc:
        raise bad_configuration(exc) from None


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log output (-vv for debug, and a traceback on an unexpected error).",
)
@click.version_option(
    __version__, "-V", "--version", prog_name="bwv", message="%(prog)s %(version)s"
)
def main(verbose: int) -> None:
    """bwv: open body-worn video.

    Records H.264 + AAC footage with a RAM-only pre-record buffer, signs and encrypts it on
    the device, and ships it to a dock. Without camera hardware, start with the simulator:

    \b
      bwv sim raid --out /tmp/raid     a scripted raid, end to end, in a few seconds
      bwv sim                          the device in your terminal: press and hold the button
      bwv verify /tmp/raid             check recorded evidence offline

    On a camera (see docs/technicians-guide.md):

    \b
      bwv provision ... -> bwv selftest -> systemctl start bwv -> bwv status

    On the dock: bwv dock serve, bwv dock token, bwv dock status, bwv dock export.
    """
    GuardedGroup.verbose = verbose
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/bwv/bwv.toml"),
    show_default=True,
)
def run(config_path: Path) -> None:
    """Run the camera daemon on the device's hardware (systemd's bwv.service runs this).

    Needs picamera2, pyaudio and RPi.GPIO (install.sh sets them up) and a provisioned key
    (`bwv provision`); without a key it runs, shows the fault pattern and refuses to record.
    """
    from device_app.daemon import DaemonSetupError, run_daemon

    cfg = _load_config(config_path, {})
    try:
        code = run_daemon(cfg)
    except DaemonSetupError as exc:
        raise CannotCheck(str(exc)) from None
    sys.exit(code)


@main.group(invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML configuration file (defaults are used for what it does not set).",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("sim-state"),
    show_default=True,
    help="Where the simulated device keeps its storage.",
)
@click.pass_context
def sim(ctx: click.Context, config_path: Path | None, state: Path) -> None:
    """Run the device on simulated hardware.

    Without a subcommand: the interactive simulator in this terminal, in real time.
    SPACE presses the record button, H holds it (3 s hold stops), T toggles stealth, Q quits;
    on quit the camera docks (STATE/dock) and the commands to export and play what it
    recorded are printed. It needs a terminal: headless, use `bwv sim raid`.
    """
    ctx.obj = {"config": config_path}
    if ctx.invoked_subcommand is None:
        from simulator.interactive import NoTerminal, run_interactive

        cfg = _load_config(config_path, {"device_id": "sim-0001"} if not config_path else {})
        try:
            run_interactive(cfg, state)
        except NoTerminal as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)


def _fleet_dock(out: Path) -> None:
    """OUT/dock bound to a fresh bucket and database on the shared servers, or exit 2."""
    import os

    from simulator.raid_fleet import FleetUnavailable, prepare_fleet_dock

    try:
        b = prepare_fleet_dock(out / "dock", os.environ)
    except FleetUnavailable as exc:
        click.echo(f"bwv sim raid: {exc}", err=True)
        sys.exit(2)
    click.echo(f"bwv sim raid: the dock keeps its store in {b.objects}, its index in {b.index}")


@sim.command("raid")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the recordings and summary.json.",
)
@click.option(
    "--pre-record",
    type=FiniteFloat(0.0, 3600.0),
    help="Pre-record seconds (config: pre_record.seconds).",
)
@click.option(
    "--record",
    type=FiniteFloat(0.0, 86_400.0),
    default=20.0,
    show_default=True,
    help="Seconds to record after the press before the officer holds to stop.",
)
@click.option("--size", help="Frame size WxH (config: video.width, video.height).")
@click.option("--fps", type=int, help="Frames per second (config: video.fps).")
@click.option("--realtime", is_flag=True, help="Run at the speed of the wall clock.")
@click.option(
    "--dock-store",
    type=click.Choice(["dir", "s3"]),
    default="dir",
    show_default=True,
    help="Where the raid's dock keeps the footage: a folder (OUT/dock), or S3 Object Lock "
    "and a PostgreSQL index as many docks share them (start them first: "
    "scripts/fleet-services.sh up; source /tmp/bwv-fleet/fleet.env).",
)
@click.option(
    "--key-store",
    type=click.Choice(["file", "tpm"]),
    default="file",
    show_default=True,
    help="Where the camera's key lives: a file, or a software TPM (Debian's swtpm, started "
    "in OUT/tpm: the key is made inside it, every chain record numbered by its counter, and "
    "the dock enrols the camera on the TPM's attestation).",
)
@click.pass_context
def sim_raid(
    ctx: click.Context,
    out: Path,
    pre_record: float | None,
    record: float,
    size: str | None,
    fps: int | None,
    realtime: bool,
    dock_store: str,
    key_store: str = "file",
) -> None:
    """A scripted raid on the simulated device, headless.

    Boots, buffers, presses once more than the pre-record window has passed, records,
    holds the button to stop, then writes OUT/summary.json and checks that everything it
    expected was recorded. Exits 0 only if it was.

    OUT must be new, empty, or an earlier raid's folder, which is replaced (saying so);
    anything else is refused (exit 2).
    """
    from simulator.raid import RaidOutError, RaidPlan, prepare_out

    overrides: dict = {}
    if ctx.obj.get("config") is None:
        overrides["device_id"] = "sim-0001"
    if pre_record is not None:
        overrides["pre_record.seconds"] = pre_record
    if fps is not None:
        overrides["video.fps"] = fps
        overrides["video.gop"] = fps
    if size:
        try:
            w, h = (int(x) for x in size.lower().split("x"))
        except ValueError:
            raise click.BadParameter("expected WxH, e.g. 1280x720", param_hint="--size") from None
        overrides["video.width"], overrides["video.height"] = w, h
    cfg = _load_config(ctx.obj.get("config"), overrides)
    if record <= 0:
        raise click.BadParameter("must be > 0", param_hint="--record")
    try:
        replaced = prepare_out(out)
    except RaidOutError as exc:
        click.echo(f"bwv sim raid: {exc}", err=True)
        sys.exit(2)
    if replaced:
        click.echo(f"bwv sim raid: replacing the earlier raid in {out}", err=True)
    if dock_store == "s3":
        _fleet_dock(out)
    plan = RaidPlan(record_s=record)
    now_us = time.time_ns() // 1000
    epoch = now_us if realtime else now_us - plan.lasts_us(cfg)  # over before it docks
    result = _run_raid(cfg, out, plan, realtime, epoch, key_store)
    for rec in result.summary["recordings"]:
        click.echo(
            f"recording {rec['id']}: frames {rec['first_frame']}..{rec['last_frame']} "
            f"(press at frame {rec['press_frame']}), {len(rec['segments'])} segments, "
            f"{rec['dropped_frames']} dropped"
        )
        for seg in rec["segments"]:
            click.echo(f"  {out / seg}")
    click.echo(f"summary: {out / 'summary.json'}")
    if not result.ok:
        for p in result.problems:
            click.echo(f"PROBLEM: {p}", err=True)
        sys.exit(1)


def _run_raid(cfg: Any, out: Path, plan: Any, realtime: bool, epoch: int, key_store: str) -> Any:
    from crypto.identity import IdentityError
    from simulator.raid import run_raid
    from simulator.soft_tpm import SoftTpmUnavailable

    try:
        return run_raid(cfg, out, plan, realtime=realtime, wall_epoch_us=epoch, key_store=key_store)
    except SoftTpmUnavailable as exc:
        click.echo(f"bwv sim raid: {exc}", err=True)
        sys.exit(2)
    except IdentityError as exc:  # the TPM would not make or use the key
        click.echo(f"bwv sim raid: {exc}", err=True)
        sys.exit(2)


def _add_sim_console() -> None:
    from bwv.sim_console import sim_console

    sim.add_command(sim_console)


_add_sim_console()


@sim.command("record", hidden=True)
@click.option("--seconds", type=FiniteFloat(0.0, 86_400.0), default=60.0, show_default=True)
@click.pass_context
def sim_record(ctx: click.Context, seconds: float) -> None:
    """Record at once for SECONDS on the simulated device, printing each event as a JSON
    line (for fault tests: kill it and restart it on the same --state)."""
    from simulator.raid import run_record

    assert ctx.parent is not None  # a subcommand of `bwv sim`, which has --state
    state: Path = ctx.parent.params["state"]
    cfg = _load_config(ctx.obj.get("config"), {})

    def emit(e) -> None:
        print(json.dumps({"at_us": e.at_us, "kind": e.kind, "detail": e.detail}), flush=True)

    run_record(cfg, state, seconds, emit)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--device-pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The device's Ed25519 public key (hex or base64). Not needed for a "
    "`bwv sim raid` folder, which holds it.",
)
@click.option(
    "--agency-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The agency's X25519 private key: also decrypt and check the footage, and that "
    "it is sealed to this agency (else wrong_agency_key).",
)
@click.option(
    "--agency-pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The agency's X25519 public key (agency.pub): check that every segment is sealed "
    "to it (else wrong_agency_key), without decrypting.",
)
@click.option(
    "--dock-pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="For an exhibit: the Ed25519 public key of the dock that enrolled the device "
    "(instead of --device-pub): the exhibit's device.pub must be the key it enrolled.",
)
@click.option("--device-id", help="The device id the footage must carry.")
@click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    help="A witness's public key (a C2SP vkey, or a file of vkey lines; repeatable): every "
    "record must be in the dock's log as a checkpoint cosigned by it shows.",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The latest checkpoint fetched from the witness (`bwv witness latest`).",
)
@click.option(
    "--tsa-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The time-stamping authority's CA certificate (PEM): read the checkpoints' "
    "RFC 3161 times (the latest each recording can have been made).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def verify(
    paths: tuple[Path, ...],
    device_pub: Path | None,
    agency_key: Path | None,
    agency_pub: Path | None,
    dock_pub: Path | None,
    device_id: str | None,
    witness_keys: tuple[str, ...],
    checkpoint: Path | None,
    tsa_ca: Path | None,
    as_json: bool,
) -> None:
    """Check recorded evidence offline: signatures, hashes, the chain, the end records.

    PATHS are a device outbox (segments/, chain/, trail.jsonl), a `bwv sim raid` folder,
    single files from an outbox, or an exhibit (a folder `bwv dock export` wrote, or its
    .zip: its MP4s are checked fragment by fragment, no agency key needed). Reports per
    segment and per fragment what is authentic, missing, altered, reordered, substituted
    or unsigned.

    \b
    Exit status: 0  everything given is authentic and complete
                 1  something is not (the report says what)
                 2  the check could not run (bad arguments, unreadable keys)
    """
    from bwv.verify_cmd import run_verify
    from bwv.verify_log import load_trust

    dock_key = None
    if dock_pub is not None:
        from crypto.identity import IdentityError, load_dock_public_key

        try:
            dock_key = bytes(load_dock_public_key(dock_pub))
        except IdentityError:
            dock_key = None  # said by the check that needs it
    trust = load_trust(witness_keys, checkpoint, tsa_ca, dock_key, as_json)
    sys.exit(
        run_verify(
            list(paths),
            device_pub,
            agency_key,
            device_id,
            as_json,
            dock_pub,
            trust,
            agency_pub=agency_pub,
        )
    )


@main.group()
def config() -> None:
    """Check and show the configuration."""


@config.command("check")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def config_check(path: Path) -> None:
    """Validate a configuration file; print the full effective configuration as JSON.

    Exit status: 0 valid, 2 not (one line names the file or the key and what is wrong)."""
    from dataclasses import asdict

    cfg = _load_config(path, {})
    click.echo(json.dumps(asdict(cfg), indent=2))


@config.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The configuration file [default: /etc/bwv/bwv.toml if it "
    "exists, else the built-in defaults].",
)
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON instead of TOML.")
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration: the file's values with every default filled in
    (TOML that `--config` accepts as it is, or JSON)."""
    from dataclasses import asdict

    from bwv.config_show import DEVICE_CONFIG, to_toml
    from bwv.errors import fail

    source = config_path
    if source is None and DEVICE_CONFIG.exists():
        source = DEVICE_CONFIG
    try:
        cfg = load(source)
    except ConfigError as exc:
        fail(f"bad configuration: {exc}", as_json)
    if as_json:
        click.echo(json.dumps(asdict(cfg), indent=2))
        return
    origin = (
        f"{source} with defaults filled in"
        if source
        else (f"built-in defaults ({DEVICE_CONFIG} does not exist)")
    )
    click.echo(f"# bwv {__version__}: the effective configuration: {origin}")
    click.echo(to_toml(asdict(cfg)), nl=False)


def _register() -> None:
    from bwv.agency_cmd import agency
    from bwv.dock_cmd import dock
    from bwv.provision_cmd import provision
    from bwv.selftest_cmd import selftest
    from bwv.status_cmd import status
    from bwv.tsa_cmd import tsa
    from bwv.witness_cmd import witness

    for command in (dock, provision, selftest, status):
        main.add_command(command)
    main.add_command(agency)
    main.add_command(tsa)
    main.add_command(witness)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
