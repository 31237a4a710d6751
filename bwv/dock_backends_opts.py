"""``bwv dock serve``'s store options: a folder (the embedded store, as ever) or, for many
docks serving one agency, ``--store s3://BUCKET[/PREFIX] --index postgresql://...
--state DIR`` (dock/backends.py). Each refusal is one line (``DockUsageError``, exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bwv.dock_common import DockUsageError

F = TypeVar("F", bound=Callable[..., Any])


def serve_store_options(f: F) -> F:
    """``--store`` (a folder or ``s3://``), ``--index``, ``--state``, ``--s3-credentials``."""
    f = click.option(
        "--s3-credentials",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A file (mode 0600) with the S3 keys (AWS_ACCESS_KEY_ID=..., "
        "AWS_SECRET_ACCESS_KEY=..., optionally BWV_S3_ENDPOINT=...). Without it: the "
        "environment's.",
    )(f)
    f = click.option(
        "--state",
        "state_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="With --store s3://...: this dock's own folder (its copy of the store's dock.key, "
        "TLS, uploads under way, the log's tree), e.g. /var/lib/bwv-dock. Other `bwv dock` "
        "commands take it as their --store.",
    )(f)
    f = click.option(
        "--index",
        metavar="postgresql://USER@HOST/DB",
        help="With --store s3://...: the PostgreSQL database every dock of the store shares "
        "(no password in the URL: PGPASSFILE or PGPASSWORD).",
    )(f)
    f = click.option(
        "--store",
        "store",
        required=True,
        metavar="DIR|s3://BUCKET[/PREFIX]",
        help="The dock's store: a folder (e.g. /var/lib/bwv-dock), or an S3 bucket with "
        "Object Lock shared by many docks (with --index and --state).",
    )(f)
    return f


def tpm_ca_option(f: F) -> F:
    """``--tpm-ca PEM`` (repeatable): the TPM makers' CAs the dock trusts (dock/tpm_trust.py)."""
    return click.option(
        "--tpm-ca",
        "tpm_ca",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A TPM maker's CA certificate (PEM; repeat for each): a camera whose key is held "
        "in a TPM is enrolled only if its TPM's endorsement key certificate chains to one of "
        "them. Kept in STORE/dock.toml (tpm_ca) for later starts; given again, it replaces "
        "the list. Without any: keys held in a TPM are not enrolled.",
    )(f)


def resolve_store(
    store: str, index: str | None, state_dir: Path | None, s3_credentials: Path | None
) -> Path:
    """The folder ``serve`` works in, its ``dock.toml`` written or checked for shared
    backends."""
    from dock.backends import Backends, BackendsError, bind_backends, check_index_url
    from dock.storedir import StoreDirError, check_store_dir

    if not store.startswith("s3://"):
        if index or state_dir or s3_credentials:
            raise DockUsageError(
                "--index, --state and --s3-credentials go with --store s3://BUCKET "
                "(a store folder keeps its own index)"
            )
        if Path(store).is_file():
            raise DockUsageError(f"--store: {store} is a file: give a folder for the dock's store")
        return Path(store)
    if state_dir is None:
        raise DockUsageError(
            "--store s3://... needs --state DIR (this dock's own folder), and --index "
            "postgresql://... when several docks share the bucket"
        )
    try:
        from dock.backends import check_objects_url

        shared = check_index_url(index) if index is not None else None
        wanted = Backends(check_objects_url(store), shared, s3_credentials)
        check_store_dir(state_dir)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        bind_backends(state_dir, _absolute(wanted))
    except (BackendsError, StoreDirError) as exc:
        raise DockUsageError(str(exc)) from None
    except OSError as exc:
        raise DockUsageError(f"{state_dir}: cannot set up the folder ({exc.strerror})") from None
    except ImportError:
        raise DockUsageError(
            "--store s3://... needs bwv's fleet libraries: pip install 'bwv[fleet]'"
        ) from None
    return state_dir


def _absolute(b: Any) -> Any:
    from dataclasses import replace

    if b.s3_credentials is None:
        return b
    return replace(b, s3_credentials=Path(b.s3_credentials).resolve())
