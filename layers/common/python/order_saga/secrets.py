"""Secrets Manager reads, cached across warm invocations (Powertools parameters)."""

from typing import Any

from aws_lambda_powertools.utilities import parameters

from .errors import ConfigurationError


def read_secret(arn: str, *, setting: str, max_age: int, as_json: bool, fresh: bool = False) -> Any:
    """The secret's value (`fresh`: from Secrets Manager, not the cache); a missing or unreadable
    secret is a ConfigurationError naming `setting`."""
    try:
        return parameters.get_secret(
            arn, transform="json" if as_json else None, max_age=max_age, force_fetch=fresh
        )
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise ConfigurationError(f"cannot read the secret named by {setting}={arn}: {exc}") from exc
