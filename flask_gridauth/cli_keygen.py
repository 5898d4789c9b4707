"""``flask gridauth keygen``: make an Ed25519 key pair for signed requests."""

from __future__ import annotations

import click

from .client import generate_keypair, write_private_key

#: Where ``keygen`` writes the private key unless told otherwise.
DEFAULT_KEY_FILE = "gridauth-signing-key.pem"


@click.command("keygen")
@click.option(
    "--out",
    "out",
    default=DEFAULT_KEY_FILE,
    show_default=True,
    type=click.Path(dir_okay=False, writable=True),
    help="New file for the private key (PEM, mode 0600); an existing file is never overwritten.",
)
def keygen(out: str) -> None:
    """Make a new Ed25519 key pair: the private key goes to a file, the public key is printed.

    Register the printed public key (``POST /api-keys`` with ``"type": "signing"``);
    keep the private key file on the client that signs.
    """
    keypair = generate_keypair()
    try:
        write_private_key(out, keypair)
    except FileExistsError:
        raise click.ClickException(f"{out} already exists; refusing to overwrite a key (use --out)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"private key: {out} (mode 0600, keep it secret)")
    click.echo(f"public key:  {keypair.public_key}")
    click.echo(f"fingerprint: {keypair.fingerprint}")
