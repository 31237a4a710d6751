"""The dock's transparency log on the command line: the witnesses and TSA it asks
(``--witness``, ``--tsa``, ``--tsa-ca`` of ``bwv dock init`` and ``bwv dock serve``, kept in
the store), what ``bwv dock status`` says of it, and the checkpoint a command's custody
entries need when no dock is running (dock/translog.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from dock.checkpoints import LogConfig
    from dock.store_sqlite import DirectoryStore

F = TypeVar("F", bound=Callable[..., Any])


def log_options(f: F) -> F:
    f = click.option(
        "--tsa-ca",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The TSA's CA certificate (PEM): its tokens are checked against it.",
    )(f)
    f = click.option(
        "--tsa",
        "tsa_url",
        metavar="URL",
        help="An RFC 3161 time-stamping authority: each checkpoint gets its token (trusted "
        "time). Without one, checkpoints carry no trusted time, and the dock says so.",
    )(f)
    f = click.option(
        "--witness",
        "witness",
        multiple=True,
        metavar="URL=VKEY|FILE",
        help="A witness that cosigns the dock's checkpoints (C2SP tlog-witness): its URL and "
        "verifier key (`bwv witness vkey`), or a file of URL=VKEY lines; repeatable. Without "
        "one, the dock signs its checkpoints alone (unwitnessed), and says so.",
    )(f)
    return f


def log_config_of(
    witness: tuple[str, ...], tsa_url: str | None, tsa_ca: Path | None
) -> LogConfig | None:
    """The configuration the options give (None: none given, keep the store's)."""
    from dock.checkpoints import LogConfig, LogConfigError, parse_witness, read_witness_file

    if not witness and tsa_url is None and tsa_ca is None:
        return None
    if (tsa_url is None) != (tsa_ca is None):
        raise click.UsageError("--tsa and --tsa-ca go together: the TSA and its CA certificate")
    if tsa_url is not None and not tsa_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{tsa_url!r}: not an http(s) URL", param_hint="--tsa")
    found = []
    try:
        for value in witness:
            if "=" not in value and Path(value).is_file():
                found += read_witness_file(Path(value))
            else:
                found.append(parse_witness(value))
    except LogConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--witness") from None
    ca = None
    if tsa_ca is not None:
        ca = tsa_ca.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in ca:
            raise click.BadParameter(f"{tsa_ca}: not a PEM certificate", param_hint="--tsa-ca")
    return LogConfig(tuple(found), tsa_url, ca)


def log_facts(store_dir: Path, key_id: str, public_key: bytes) -> dict[str, Any]:
    """What a witness operator needs to witness this dock, and whom it asks."""
    from dock.checkpoints import load_log_config, origin_for
    from dock.log_proof import dock_note_vkey

    cfg = load_log_config(store_dir)
    return {
        "log_origin": origin_for(key_id),
        "log_vkey": dock_note_vkey(public_key),
        "witnesses": [f"{w.name} {w.url}" for w in cfg.witnesses],
        "tsa": cfg.tsa_url,
    }


def echo_log_facts(facts: dict[str, Any]) -> None:
    click.echo(f"log origin:      {facts['log_origin']}")
    click.echo(f"log key:         {facts['log_vkey']}")
    click.echo("                 a witness adds it: bwv witness add-log --origin ORIGIN --vkey KEY")
    if facts["witnesses"]:
        for w in facts["witnesses"]:
            click.echo(f"witness:         {w}")
    else:
        click.echo("witness:         none: checkpoints are signed by this dock alone (unwitnessed)")
    click.echo(
        f"TSA:             {facts['tsa']}"
        if facts["tsa"]
        else "TSA:             none: checkpoints carry no trusted time"
    )


def checkpoint_now(store_dir: Path, store: DirectoryStore) -> None:
    """After a command appended custody entries: the checkpoint they need, unless a running
    dock holds the log (it issues it). A failure is said, never fatal: the entries are in
    the store, and the next checkpoint covers them."""
    from dock.translog import sync_if_free

    try:
        sync_if_free(store_dir, store._key, store)
    except Exception as exc:
        click.echo(
            f"note: the dock's log has the entry, but no checkpoint could be issued now "
            f"({exc}); the dock issues one when it next runs",
            err=True,
        )


def print_log_status(log: dict[str, Any]) -> None:
    """The LOG section of ``bwv dock status``."""
    size = log["checkpoint_size"]
    click.echo(f"\nLOG {log['origin']}")
    click.echo(
        f"  {log['leaves']} leaves; latest checkpoint: "
        + (f"{size} leaves" if size is not None else "none yet")
        + (", time-stamped" if log["checkpoint_timestamped"] else "")
    )
    if size is not None and log["leaves"] > size:
        click.echo(f"  {log['leaves'] - size} leaves not yet in a checkpoint")
    for w in log["witnesses"]:
        state = "cosigned the latest" if w["cosigned_latest"] else "has NOT cosigned the latest"
        click.echo(f"  witness {w['name']} ({w['url']}): {state}")
    for note in log["notes"]:
        click.echo(f"  {note}")
