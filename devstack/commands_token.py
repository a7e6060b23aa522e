"""`order-saga token`: the local stack's token issuer, standing in for Cognito."""

import click

from order_saga.manifest import SCOPE_READ, SCOPE_WRITE

from .devtokens import mint_token


@click.command()
@click.option("--sub", required=True, help="The user the token speaks for (its subject).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=[SCOPE_READ, SCOPE_WRITE],
    show_default=True,
    help="Repeatable.",
)
@click.option("--ttl", default=3600, show_default=True, help="Seconds the token stays valid.")
def token(sub: str, scopes: tuple[str, ...], ttl: int) -> None:
    """Mint a dev access token that the local edge accepts."""
    click.echo(mint_token(sub, scopes, ttl_seconds=ttl))
