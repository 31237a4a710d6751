"""``bwv dock``: run the dock, enrol and revoke cameras, see what it holds, hand footage over.

Every command but ``serve`` works on the store directory directly (no server needed; safe
while one runs). Secrets stay in the store: the dock key and the admin token are never
printed; the only secret ever shown is a fresh enrollment token, once, by ``token``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bwv.dock_account_cmd import account
from bwv.dock_backends_opts import resolve_store, serve_store_options, tpm_ca_option
from bwv.dock_common import (
    EXIT_ERROR,
    EXIT_NOT_VERIFIED,
    EXIT_OK,
    DockUsageError,
    now_us,
    open_store_or_fail,
    when,
)
from bwv.dock_export_report import print_export
from bwv.dock_init import STORE_OPTION, init
from bwv.dock_log_cmd import (
    checkpoint_now,
    log_config_of,
    log_facts,
    log_options,
)
from bwv.dock_serve import (
    ConsoleServing,
    admin_listener,
    announce,
    check_bind,
    console_options,
    open_for_serving,
    parse_admin_listen,
    parse_console_listen,
    parse_listen,
    serve_facts,
    serve_until_stopped,
    tls_for_serving,
)
from bwv.dock_status import collect_status
from bwv.verify_log import status_witness_options
from dock.enroll import DEFAULT_TTL_S
from dock.export import ExportError, check_device_id, export_recording

DEFAULT_LISTEN = "127.0.0.1:8443"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def dock() -> None:
    """The dock: takes in cameras' footage, verifies it, keeps it, hands it over.

    \b
    On the dock machine (DIR is the store, e.g. /var/lib/bwv-dock):
      bwv dock serve  --store DIR --listen 0.0.0.0:8443   run it (bwv-dock.service does):
                                                          HTTPS for cameras; prints the key
                                                          each camera pins (--dock-key)
      bwv dock token  --store DIR --device bwv-0042       one-time token to enrol a camera
      bwv dock status --store DIR                         cameras, recordings, gaps
      bwv dock export --store DIR REC --out DIR2 --agency-key agency.key
                                                          hand a recording over, playable
      bwv dock revoke --store DIR bwv-0042 --reason "reported lost"
                                                          refuse a lost or stolen camera
    """


dock.add_command(init)
dock.add_command(account)  # bwv dock account add|list|disable|passwd: the console's accounts


# --------------------------------------------------------------------------- serve


@dock.command()
@serve_store_options
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where cameras connect (HTTPS only). 0.0.0.0:8443 to take cameras from the network.",
)
@click.option(
    "--admin-listen",
    default="unix",
    show_default=True,
    metavar="unix[:PATH]|HOST:PORT",
    help="Where the admin side (/v1/admin/...) listens: a Unix socket (default: "
    "STORE/admin.sock, mode 0600) or a loopback address such as 127.0.0.1:8444.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A certificate for the dock's own key to serve instead of the one the dock makes "
    "itself (STORE/tls.crt). It must hold the dock key: cameras pin that key.",
)
@click.option(
    "--agency-pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The agency's X25519 public key (agency.pub, as `bwv agency keygen` made it), "
    "pinned in the store (STORE/agency.pub) on first use: segments sealed to another "
    "agency key are refused (wrong_agency_key). Later starts use the pinned key.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The log on stderr: text lines, or JSON lines for a log collector (the "
    "server's own lines too).",
)
@console_options
@tpm_ca_option
@log_options
def serve(
    store: str,
    index: str | None,
    state_dir: Path | None,
    s3_credentials: Path | None,
    listen: str,
    admin_listen: str,
    tls_cert: Path | None,
    agency_pub: Path | None,
    log_format: str,
    console_listen: str,
    console_cert: Path | None,
    console_key: Path | None,
    tpm_ca: tuple[Path, ...],
    witness: tuple[str, ...],
    tsa_url: str | None,
    tsa_ca: Path | None,
) -> None:
    """Run the dock server on a store until stopped (Ctrl-C).

    bwv-dock.service runs this on a dock machine. The --store folder (DIR) must be a dock
    store, or empty or missing: any other folder is refused. The first start makes the
    store there, with the dock's signing key (dock.key), its TLS certificate for that same
    key (tls.crt, tls.key) and the admin token (admin.token), secrets mode 0600 and never
    printed, and DIR/dock.pub, the dock's public key.

    Cameras connect over HTTPS only (TLS 1.3). Each camera pins the dock's key when it is
    provisioned: `bwv provision --dock-key FINGERPRINT` with the fingerprint this command
    prints (or the dock.pub file); the camera then talks to no other server, and trusts only
    answers and receipts signed by that key.

    The admin side (/v1/admin/...: tokens, revocation, devices, custody log; bearer token
    admin.token) listens apart, on --admin-listen: never where cameras connect.

    A camera whose key is held in a TPM is enrolled only with its TPM's attestation, from a
    TPM maker's CA given by --tpm-ca (kept for later starts).

    Footage sealed to another agency key than --agency-pub's is refused (wrong_agency_key);
    without a pinned agency key the dock says it cannot check that. Every record and custody
    entry joins the dock's transparency log (STORE/log/), whose checkpoints are time-stamped
    by --tsa and cosigned by each --witness (kept for later starts); anyone can fetch them:
    GET /v1/log/checkpoint, /v1/log/proof/INDEX.

    Every refused request is logged (reason, device id, remote address; never a token or
    key). https://HOST:PORT/ says what the server is; /docs is the API.

    The console (web pages; accounts from `bwv dock account add`) listens on --console-listen,
    HTTPS with its own certificate (STORE/console.crt), with /healthz and /metrics; the
    retention job runs in the background.

    Many docks on one store (README, "Many docks"): --store s3://BUCKET (S3 Object Lock)
    --index postgresql://USER@HOST/DB (shared) --state DIR (this dock's own folder, then the
    --store of every other `bwv dock` command); S3 keys from the environment.
    """
    store_dir = resolve_store(store, index, state_dir, s3_credentials)
    host, port = parse_listen(listen)
    admin_sock_path, admin_host, admin_port = parse_admin_listen(admin_listen, store_dir)
    console_at = parse_console_listen(console_listen)
    log_config = log_config_of(witness, tsa_url, tsa_ca)
    served = open_for_serving(store_dir, log_config, agency_pub, tpm_ca)
    tls = tls_for_serving(store_dir, served, tls_cert)
    check_bind(host, port)
    if admin_sock_path is None:
        check_bind(admin_host, admin_port)
    facts = serve_facts(store_dir, served, host, port, admin_sock_path, admin_host, admin_port)
    facts.update(log_facts(store_dir, served.key_id, served.public_key))
    at = [(host, port), (admin_host, admin_port)]
    console = ConsoleServing.prepare(store_dir, served, console_at, console_cert, console_key, at)
    facts.update(console.facts)
    config = announce(facts, log_format)
    admin_sock = admin_listener(admin_sock_path, admin_host, admin_port, facts["admin"])
    serve_until_stopped(served, (host, port), admin_sock, tls, console, config)


# --------------------------------------------------------------------------- token


@dock.command()
@STORE_OPTION
@click.option(
    "--device",
    "device_id",
    metavar="DEVICE_ID",
    required=True,
    help="The only camera the token can enrol (its device_id).",
)
@click.option(
    "--ttl",
    type=int,
    default=DEFAULT_TTL_S,
    show_default=True,
    metavar="SECONDS",
    help="How long the token stays valid if unused (the same default as POST /v1/admin/tokens).",
)
def token(store_dir: Path, device_id: str, ttl: int) -> None:
    """Issue a one-time enrollment token for a technician.

    Prints the token (alone, on stdout) once: the dock keeps only its hash, so it cannot be
    shown again. Give it only to the technician who enrols the camera, who enters it at
    the camera's enrollment; it enrols only the --device id, the first enrollment that
    presents it uses it up, and it expires after --ttl seconds.
    """
    from dock.enroll import MAX_TTL_S, issue_token

    try:
        check_device_id(device_id)
    except ExportError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    if not 0 < ttl <= MAX_TTL_S:
        raise click.BadParameter(f"must be 1..{MAX_TTL_S} seconds", param_hint="--ttl")
    store = open_store_or_fail(store_dir)
    try:
        dev = store.get_device(device_id)
        if dev is not None:
            state = "revoked" if dev.revoked else "enrolled"
            raise DockUsageError(
                f"device {device_id} is already {state} at this dock; a new camera "
                "needs a new device id"
            )
        issued = issue_token(store, now_us(), device_id=device_id, ttl_s=ttl)
        checkpoint_now(store_dir, store)
    finally:
        store.close()
    who = f"device {device_id}"
    click.echo(
        f"One-time enrollment token for {who}, valid until {when(issued.expires_at_us)}.\n"
        "Give it only to the technician enrolling the camera; it is not stored and is "
        "shown only now:",
        err=True,
    )
    click.echo(issued.token)


# --------------------------------------------------------------------------- revoke


@dock.command()
@STORE_OPTION
@click.argument("device_id")
@click.option(
    "--reason", required=True, help='Why, for the custody log (e.g. "reported lost 2024-05-01").'
)
def revoke(store_dir: Path, device_id: str, reason: str) -> None:
    """Revoke a camera for good: the dock refuses its requests and uploads from now on.

    What the dock already holds from it stays, and stays verifiable. The revocation is
    logged in the custody log. A revoked id cannot be enrolled again: a replacement camera
    gets a new id.
    """
    try:
        check_device_id(device_id)
    except ExportError as exc:
        raise click.BadParameter(str(exc), param_hint="DEVICE_ID") from None
    reason = reason.strip()
    if not reason or len(reason) > 500 or any(ord(c) < 32 for c in reason):
        raise click.BadParameter(
            "give a reason on one line, at most 500 characters", param_hint="--reason"
        )
    from dock.store import StoreError

    store = open_store_or_fail(store_dir)
    try:
        before = store.get_device(device_id)
        if before is None:
            raise DockUsageError(
                f"no device {device_id!r} is enrolled at this dock (`bwv dock status` lists them)"
            )
        if before.revoked:
            click.echo(
                f"device {device_id} was already revoked at "
                f"{when(before.revoked_at_us)} ({before.revoke_reason})"
            )
            return
        try:
            rec = store.revoke(device_id, reason, "technician", now_us())
        except StoreError as exc:
            raise DockUsageError(str(exc)) from None
        checkpoint_now(store_dir, store)
    finally:
        store.close()
    click.echo(
        f"device {device_id} revoked at {when(rec.revoked_at_us)}: the dock refuses it from now on"
    )


# --------------------------------------------------------------------------- status


@dock.command()
@STORE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option(
    "--verify",
    "reverify",
    is_flag=True,
    help="Re-check every stored byte with the offline verifier (slow on a big "
    "store), and the store against its witnessed log. Without it, the state comes from "
    "the checks made on receipt.",
)
@status_witness_options
def status(
    store_dir: Path,
    as_json: bool,
    reverify: bool,
    witness_keys: tuple[str, ...],
    checkpoint: Path | None,
) -> None:
    """What the dock holds: cameras and recordings, and whether they are whole.

    \b
    Per camera: key id, enrolled or revoked, the clock offset at its last time sync,
    the chain records and segments held, and any gap or break in its chain.
    Per recording: its camera, segments, and state:
      verified     every segment and the end record held, the chain unbroken
      gap          a segment or chain record is missing at the dock (the camera may still
                   hold it: dock it again; if not, it was lost or deleted)
      incomplete   no end-of-recording record yet: the camera is still recording or
                   shipping, or it was cut off
      ended_early  ended by a fault (full disk) or a crash, not by the officer; what the
                   camera signed is all there (a segment may end early, its tail unsigned)
      failed       (--verify) stored bytes or records are not what the camera signed,
                   or a segment is sealed to another agency key than the pinned one
      deleted      deleted under retention (custody entries retention_deleted)
    Reads the store directly; no server needed.

    \b
    Exit status: 0  shown (and with --verify: nothing altered, nothing withheld)
                 1  --verify found a recording whose stored bytes are not what was signed,
                    or a leaf of the witnessed log the store does not hold (withheld)
                 2  the store cannot be read (with --json: {"error": ...})
    """
    from bwv.verify_log import load_trust, status_with_log

    trust = load_trust(witness_keys, checkpoint, None, None, as_json)
    try:
        data = collect_status(store_dir, reverify)
    except click.ClickException as exc:
        if not as_json:
            raise
        from bwv.errors import fail

        fail(exc.format_message(), as_json, exc.exit_code)
    sys.exit(status_with_log(data, store_dir, trust if reverify else None, reverify, as_json))


# --------------------------------------------------------------------------- export


@dock.command("export")
@STORE_OPTION
@click.argument("recording_id", metavar="RECORDING")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write the recording into (made if missing; refused if it "
    "holds an earlier export, unless --replace).",
)
@click.option(
    "--agency-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The agency's X25519 private key file (mode 0600): decrypt the footage "
    "to playable MP4. Without it, the encrypted segments are exported.",
)
@click.option(
    "--device",
    "device_id",
    metavar="DEVICE_ID",
    help="The camera that recorded it (needed only if two cameras used the id).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="OUT holds an earlier export: remove it (its report, manifests/, "
    "segments/ and MP4 files; nothing else) and export afresh.",
)
@click.option("--zip", "zip_to", is_flag=True, help="Also write the exhibit as one file, OUT.zip.")
@click.option(
    "--trail",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The camera's trail.jsonl (from its outbox): its lines that cover the recording "
    "go into the exhibit (the dock does not hold the trail).",
)
@click.option("-q", "--quiet", is_flag=True, help="No per-segment progress on stderr.")
def export_cmd(
    store_dir: Path,
    recording_id: str,
    out: Path,
    agency_key: Path | None,
    device_id: str | None,
    replace: bool,
    zip_to: bool,
    trail: Path | None,
    quiet: bool,
) -> None:
    """Hand a recording over: its footage, signed records and a verification report.

    \b
    Writes, into OUT:
      RECORDING_0000.mp4 ...   the segments, decrypted with --agency-key: plain fragmented
                               MP4, plays in VLC, ffplay or a browser
      segments/*.bwvseg        (without --agency-key) the encrypted segments as stored
      manifests/*.json         the camera's signed manifests and end-of-recording record
      device.pub, enrollment.json, receipts.jsonl, custody.jsonl   the device's key, the
                               dock's signed enrollment of it, its receipts and log entries
      EXHIBIT.md               the exhibit's label: what it is and how to verify it
      report.json              the report `bwv verify OUT --device-pub P` gives on OUT
                               (the verdict printed), and what became of each segment
    It is an exhibit: anyone can check it with `bwv verify`.
    The report checks every segment against the camera's signatures and its chain. A
    segment the camera cut right after it began holds no frame: it is listed as empty,
    not written as an MP4 that would not play.

    \b
    Exit status: 0  verified (and, with --agency-key, every segment decrypted)
                 1  exported, but not verified or not all decrypted: see the messages
                 2  nothing exported (no such store or recording, bad key file, OUT holds
                    an earlier export and no --replace)
    RECORDING is a recording id as `bwv dock status` lists it.
    """
    agency = None
    if agency_key is not None:
        from crypto.identity import IdentityError, load_agency_private_key

        try:
            agency = load_agency_private_key(agency_key)
        except IdentityError as exc:
            raise DockUsageError(f"agency key: {exc}") from None

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    try:
        result = export_recording(
            store_dir,
            recording_id,
            out,
            agency,
            progress,
            device_id=device_id,
            replace=replace,
            zip_to=zip_to,
            trail=trail.read_bytes() if trail else None,
        )
    except ExportError as exc:
        raise DockUsageError(str(exc)) from None
    except OSError as exc:
        raise DockUsageError(
            f"cannot write the export: {exc.strerror} ({exc.filename or out})"
        ) from None
    if not print_export(result, out):
        sys.exit(EXIT_NOT_VERIFIED)


__all__ = ["EXIT_ERROR", "EXIT_NOT_VERIFIED", "EXIT_OK", "collect_status", "dock"]
