"""Secrets Manager reads, cached across warm invocations (Powertools parameters).

Powertools parameters imports boto3, the largest import of a function. It is imported with this
module only where the environment names a secret (deployed, every function reads one on its first
call, so boto3 loads in the init phase, as it should); elsewhere (the local stack, tests, scripts)
at the first read, if any.
"""

import os
from importlib import import_module
from typing import Any

from .errors import ConfigurationError

SECRET_SETTINGS = ("MYSQL_SECRET_ARN", "REDIS_AUTH_SECRET_ARN", "PAYMENT_GATEWAY_SECRET_ARN")
PARAMETERS = "aws_lambda_powertools.utilities.parameters"

if any(os.environ.get(setting) for setting in SECRET_SETTINGS):
    import_module(PARAMETERS)


def read_secret(arn: str, *, setting: str, max_age: int, as_json: bool, fresh: bool = False) -> Any:
    """The secret's value (`fresh`: from Secrets Manager, not the cache); a missing or unreadable
    secret is a ConfigurationError naming `setting`."""
    parameters = import_module(PARAMETERS)
    try:
        return parameters.get_secret(
            arn, transform="json" if as_json else None, max_age=max_age, force_fetch=fresh
        )
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise ConfigurationError(f"cannot read the secret named by {setting}={arn}: {exc}") from exc
