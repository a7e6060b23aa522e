"""Secrets Manager reads, cached across warm invocations (Powertools parameters).

Powertools parameters, and boto3 with it, is imported at the first read, not with this module:
a function reads a secret only where a setting names one (MYSQL_SECRET_ARN, REDIS_AUTH_SECRET_ARN,
PAYMENT_GATEWAY_SECRET_ARN), and then on its first call.
"""

from typing import Any

from .errors import ConfigurationError


def read_secret(arn: str, *, setting: str, max_age: int, as_json: bool, fresh: bool = False) -> Any:
    """The secret's value (`fresh`: from Secrets Manager, not the cache); a missing or unreadable
    secret is a ConfigurationError naming `setting`."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - boto3, at the first read

    try:
        return parameters.get_secret(
            arn, transform="json" if as_json else None, max_age=max_age, force_fetch=fresh
        )
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise ConfigurationError(f"cannot read the secret named by {setting}={arn}: {exc}") from exc
