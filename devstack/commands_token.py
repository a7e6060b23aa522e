"""`order-saga token` and `order-saga issuer`: the local token issuer, standing in for Cognito.

`token --sub alice` mints a customer's access token (what the customer app gets from Cognito's
code grant); `token --client NAME` mints a service's (the client-credentials grant). `issuer
rotate-key` and `issuer withdraw-key` roll the signing keys the edge verifies through the JWKS.
"""

import click

from .issuer.keys import UnknownKey
from .issuer.process import local_issuer, token_issuer_server
from .issuer.tokens import CUSTOMER_SCOPES, SERVICE_SCOPES


@click.command()
@click.option("--sub", "customer", help="A customer's token: the customer it speaks for (its `sub`).")
@click.option("--client", help="A service's token: the client app's id (client credentials).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help=f"Repeatable; `orders:…` scopes get the resource server's prefix. Default: "
    f"{' '.join(CUSTOMER_SCOPES)} for a customer, {' '.join(SERVICE_SCOPES)} for a service.",
)
@click.option("--ttl", default=3600, show_default=True, help="Seconds the token stays valid.")
@click.option("--id-token", is_flag=True, help="A customer's ID token instead (the edge refuses it).")
def token(
    customer: str | None, client: str | None, scopes: tuple[str, ...], ttl: int, id_token: bool
) -> None:
    """Mint an access token of the local token issuer, which the local edge verifies."""
    if (customer is None) == (client is None):
        raise click.UsageError("name either the customer (--sub) or the service (--client)")
    if id_token and customer is None:
        raise click.UsageError("--id-token is a customer's: use it with --sub")
    issuer = local_issuer()
    if id_token:
        click.echo(issuer.id_token(customer or "", ttl_seconds=ttl))
    elif customer is not None:
        click.echo(issuer.customer_token(customer, scopes or CUSTOMER_SCOPES, ttl_seconds=ttl))
    else:
        click.echo(issuer.service_token(client or "", scopes or SERVICE_SCOPES, ttl_seconds=ttl))


@click.group()
def issuer() -> None:
    """The local token issuer's signing keys (its JWKS is what the edge trusts)."""


@issuer.command("keys")
def keys() -> None:
    """The published key ids, oldest first; the last one signs."""
    for kid in token_issuer_server().keys.kids():
        click.echo(kid)


@issuer.command("rotate-key")
def rotate_key() -> None:
    """A new signing key; the old ones stay published, so the tokens they signed still verify."""
    click.echo(f"signing with {token_issuer_server().keys.rotate()}")


@issuer.command("withdraw-key")
@click.argument("kid")
def withdraw_key(kid: str) -> None:
    """Take a key out of the JWKS: its tokens stop verifying when the edge's key cache expires."""
    try:
        token_issuer_server().keys.withdraw(kid)
    except UnknownKey as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"withdrew {kid}")
