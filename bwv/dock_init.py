"""``bwv dock init``: make a dock store (or open one) and set who vouches for its log and
which agency key it takes footage for, without serving. ``STORE_OPTION`` is every dock
command's ``--store``."""

from __future__ import annotations

from pathlib import Path

import click

from bwv.dock_backends_opts import serve_store_options, tpm_ca_option
from bwv.dock_log_cmd import echo_log_facts, log_config_of, log_facts, log_options
from bwv.dock_serve import open_for_serving

STORE_OPTION = click.option(
    "--store",
    "store_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The dock's store directory (the one `bwv dock serve --store` uses, "
    "e.g. /var/lib/bwv-dock).",
)


@click.command()
@serve_store_options
@click.option(
    "--agency-pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The agency's X25519 public key (agency.pub), pinned in the store: segments "
    "sealed to another agency key are refused (wrong_agency_key).",
)
@tpm_ca_option
@log_options
def init(
    store: str,
    index: str | None,
    state_dir: Path | None,
    s3_credentials: Path | None,
    agency_pub: Path | None,
    tpm_ca: tuple[Path, ...],
    witness: tuple[str, ...],
    tsa_url: str | None,
    tsa_ca: Path | None,
) -> None:
    """Make a dock store (or open one) and set who vouches for its log, without serving.

    Prints the dock's key fingerprint (cameras pin it) and its log's origin and key (a
    witness operator adds them: bwv witness add-log --origin ORIGIN --vkey KEY). With
    --witness, --tsa, --agency-pub and --tpm-ca, the store keeps them for `bwv dock serve`. For many
    docks on one store, the same --store s3://... --index ... --state DIR as `serve`.
    """
    from bwv.dock_backends_opts import resolve_store
    from dock.tls import fingerprint
    from dock.tpm_trust import describe_cas

    store_dir = resolve_store(store, index, state_dir, s3_credentials)
    log_config = log_config_of(witness, tsa_url, tsa_ca)
    served = open_for_serving(store_dir, log_config, agency_pub, tpm_ca)
    try:
        click.echo(f"dock store:      {store_dir.resolve()}")
        click.echo(f"dock key id:     {served.key_id}")
        click.echo(f"dock fingerprint: {fingerprint(served.public_key)}")
        agency = served.agency_key_id
        click.echo(f"agency key id:   {agency}" if agency else "agency key:      not pinned")
        click.echo(f"TPM keys from:   {describe_cas(served.tpm_cas)}")
        echo_log_facts(log_facts(store_dir, served.key_id, served.public_key))
    finally:
        if served.translog is not None:
            served.translog.close()
        served.store.close()
