"""``bwv tsa``: run an RFC 3161 time-stamping authority (tsa/), and check one.

Exit status as everywhere (bwv/errors.py): 0 done, 1 checked and found wanting, 2 could not
run (bad arguments, a state folder that is not a TSA's, an address that cannot be listened
on). One line on stderr for each error, never a traceback; ``--json`` prints JSON on every
path.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from bwv.errors import EXIT_CANNOT_CHECK, EXIT_FOUND_WANTING, fail

STATE_HELP = "The TSA's state folder (certificates, key, openssl.cnf, serial)."


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6); port 0 picks a free one (printed at start)."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit() or int(port_s) > 65535:
        raise click.BadParameter(
            f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:3161 (port 0: any free port)",
            param_hint="--listen",
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_s)


@click.group()
def tsa() -> None:
    """An RFC 3161 time-stamping authority (TSA), run by the project on loopback or a LAN.

    \b
      bwv tsa init --state DIR                   a test CA and the TSA's certificate
      bwv tsa serve --state DIR --listen H:P     answer time-stamp queries over HTTP
      bwv tsa check --url URL --ca DIR/ca.pem    ask a TSA for a token and verify it

    A dock configured with the TSA's URL time-stamps each checkpoint of its log; a verifier
    checks the tokens against DIR/ca.pem (give it that file, never the key).
    """


@tsa.command("init")
@click.option("--state", type=click.Path(path_type=Path), required=True, help=STATE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tsa_init(state: Path, as_json: bool) -> None:
    """Make a TSA in a new or empty folder: DIR/ca.pem (the test CA: what verifiers trust),
    DIR/tsa.pem and DIR/tsa.key (0600), DIR/openssl.cnf, DIR/serial.

    A folder that already holds a TSA is left as it is (exit 0, saying so)."""
    from tsa.authority import TsaStateError
    from tsa.init import init_state

    try:
        result = init_state(state)
    except TsaStateError as exc:
        fail(str(exc), as_json)
    except OSError as exc:
        fail(f"{exc.filename or state}: {exc.strerror}", as_json)
    ca = result.state.path("ca.pem")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "state": str(state),
                    "created": result.created,
                    "ca": str(ca),
                    "ca_sha256": result.ca_fingerprint,
                }  # fmt: skip
            )
        )
        return
    said = "made a TSA in" if result.created else "already holds a TSA (nothing changed):"
    click.echo(f"bwv tsa: {said} {state}")
    click.echo(f"  CA certificate (give it to verifiers): {ca}")
    click.echo(f"  CA SHA-256 fingerprint: {result.ca_fingerprint}")
    click.echo(f"  serve it with: bwv tsa serve --state {state} --listen 127.0.0.1:3161")


@tsa.command("serve")
@click.option("--state", type=click.Path(path_type=Path), required=True, help=STATE_HELP)
@click.option(
    "--listen",
    default="127.0.0.1:3161",
    show_default=True,
    help="HOST:PORT to answer on (port 0: any free port, printed at start).",
)
def tsa_serve(state: Path, listen: str) -> None:
    """Answer RFC 3161 queries: HTTP POST / with Content-Type application/timestamp-query,
    signed by `openssl ts -reply` (one at a time). Plain HTTP: the token's signature is the
    security. Stops on SIGTERM or Ctrl-C (exit 0)."""
    from tsa.authority import TsaStateError
    from tsa.server import open_server

    host, port = parse_listen(listen)
    try:
        server = open_server(state, host, port)
    except TsaStateError as exc:
        fail(str(exc), False)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", False)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"bwv tsa: answering on {server.url} (state {state})", nl=True)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.authority.unlock()
    click.echo("bwv tsa: stopped", err=True)


@tsa.command("check")
@click.option("--url", required=True, help="The TSA's URL, e.g. http://127.0.0.1:3161/.")
@click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The CA certificate (PEM) the TSA's certificate must be issued by.",
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tsa_check(url: str, ca: Path, timeout: float, as_json: bool) -> None:
    """Ask the TSA for a token over a random digest and verify it against the CA: its time,
    how far it is from this machine's clock, and how long the answer took.

    Exit status: 0 a good token, 1 the TSA refused or its token does not verify, 2 no
    answer (unreachable) or an unreadable CA file."""
    import secrets

    from cryptography import x509

    from tsa.client import TsaClient, TsaError
    from tsa.verify import TokenError, verify_token

    digest = secrets.token_bytes(32)
    try:
        ca_pem = ca.read_bytes()
        x509.load_pem_x509_certificate(ca_pem)
    except OSError as exc:
        fail(f"{ca}: {exc.strerror}", as_json)
    except ValueError:
        fail(f"{ca}: not a PEM certificate (give the TSA's DIR/ca.pem)", as_json)
    try:
        start = time.perf_counter()
        before_us = time.time_ns() // 1000
        token = TsaClient(url, timeout).timestamp(digest)
        took_ms = (time.perf_counter() - start) * 1000
        gen_us = verify_token(token, digest, ca_pem)
    except TsaError as exc:
        fail(str(exc), as_json, EXIT_CANNOT_CHECK if exc.kind == "unreachable" else 1)
    except TokenError as exc:
        fail(f"the token does not verify ({exc.reason}): {exc}", as_json, EXIT_FOUND_WANTING)
    offset_ms = (gen_us - before_us) / 1000
    shown = datetime.fromtimestamp(gen_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": True,
                    "gen_time_us": gen_us,
                    "gen_time": shown,
                    "offset_ms": round(offset_ms, 3),
                    "took_ms": round(took_ms, 3),
                }  # fmt: skip
            )
        )
        return
    click.echo(f"bwv tsa: a good token from {url}: time {shown} (UTC)")
    click.echo(
        f"  TSA clock minus this machine's: {offset_ms:+.1f} ms; answered in {took_ms:.1f} ms"
    )
