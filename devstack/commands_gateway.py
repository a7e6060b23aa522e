"""`order-saga gateway rotate-key`: a new API key for the local payment gateway, rotated as an
operator rotates a real provider's key.

The gateway makes the new key and keeps the old one working for a grace period; the key's secret
then holds the new one. A function reads it at its next secret refresh, or at once when the old
key is refused (a 401 makes the adapter read the secret afresh), so no order fails over it.
"""

import uuid

import boto3
import click
import urllib3

from order_saga.errors import ConfigurationError
from order_saga.settings import Settings

from .commands_aws import reported

DEFAULT_GRACE_SECONDS = 600  # twice the functions' secret cache: no call meets an expired key


def rotate_gateway_key(settings: Settings, secrets: object, grace_seconds: int) -> str:
    """Roll the gateway's key (authenticated by the key its secret holds) and put the new one in
    the secret; return the new key's last four characters."""
    arn = settings.payment_gateway_secret_arn
    if not arn or not settings.payment_gateway_url:
        raise ConfigurationError("no payment gateway here: start the stack (`order-saga up`) first")
    current = secrets.get_secret_value(SecretId=arn)["SecretString"]  # type: ignore[attr-defined]
    reply = urllib3.request(
        "POST",
        f"{settings.payment_gateway_url.rstrip('/')}/v1/api_keys/roll",
        json={"grace_seconds": grace_seconds},
        headers={"Authorization": f"Bearer {current}", "Idempotency-Key": f"roll-{uuid.uuid4()}"},
        timeout=30,
    )
    if reply.status != 200:
        raise ConfigurationError(f"the gateway did not roll its key ({reply.status}): {reply.data[:200]!r}")
    key = str(reply.json()["key"])
    secrets.put_secret_value(SecretId=arn, SecretString=key)  # type: ignore[attr-defined]
    return key[-4:]


@click.group()
def gateway() -> None:
    """The local payment gateway server."""


@gateway.command("rotate-key")
@click.option("--grace", "grace_seconds", type=click.IntRange(0), default=DEFAULT_GRACE_SECONDS,
              show_default=True, help="seconds the old key keeps working")  # fmt: skip
@reported
def rotate_key(grace_seconds: int) -> None:
    """Make a new API key, put it in the key's secret; the old one expires after the grace."""
    last4 = rotate_gateway_key(Settings(), boto3.client("secretsmanager"), grace_seconds)
    click.echo(
        f"payment gateway key rotated: the secret holds …{last4}; the old key works {grace_seconds}s more"
    )
