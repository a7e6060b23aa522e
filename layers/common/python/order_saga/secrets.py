"""Secrets Manager reads, cached across warm invocations.

Where the environment names the AWS Parameters and Secrets Lambda Extension's port
(PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: in AWS the extension layer the CDK adds sets it, on the
local stack the invoker does), a secret is read through the extension: an HTTP GET to localhost,
answered from the extension's cache (SECRETS_MANAGER_TTL, 300 s by default) or by its own
GetSecretValue call with the function's role. No SDK is imported for it, which keeps boto3 out of
a function's cold start; `fresh` asks the extension to bypass its cache (`refreshNow=true`).

Elsewhere (the edge on ECS, operator tools, tests) Powertools parameters reads it with boto3,
cached in the process for `max_age` seconds. Powertools parameters imports boto3, the largest
import there is: it is imported with this module where the environment names a secret (so it
loads at start), else at the first read, if any.
"""

import http.client
import json
import os
from importlib import import_module
from typing import Any
from urllib.parse import urlencode

from .errors import ConfigurationError

SECRET_SETTINGS = ("MYSQL_SECRET_ARN", "REDIS_AUTH_SECRET_ARN", "PAYMENT_GATEWAY_SECRET_ARN")
PARAMETERS = "aws_lambda_powertools.utilities.parameters"
EXTENSION_PORT = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
EXTENSION_TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header's name
EXTENSION_TIMEOUT_SECONDS = 10.0  # the extension's own call to Secrets Manager included

if not os.environ.get(EXTENSION_PORT) and any(os.environ.get(setting) for setting in SECRET_SETTINGS):
    import_module(PARAMETERS)


def read_secret(arn: str, *, setting: str, max_age: int, as_json: bool, fresh: bool = False) -> Any:
    """The secret's value (`fresh`: from Secrets Manager, not a cache); a missing or unreadable
    secret is a ConfigurationError naming `setting`. Through the extension, the cache's age is the
    extension's SECRETS_MANAGER_TTL, not `max_age`."""
    port = os.environ.get(EXTENSION_PORT)
    if not port:
        return _read_with_sdk(arn, setting=setting, max_age=max_age, as_json=as_json, fresh=fresh)
    text = _read_through_extension(port, arn, setting=setting, fresh=fresh)
    if not as_json:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"the secret named by {setting}={arn} is not JSON: {exc}") from exc


def _read_with_sdk(arn: str, *, setting: str, max_age: int, as_json: bool, fresh: bool) -> Any:
    parameters = import_module(PARAMETERS)
    try:
        return parameters.get_secret(
            arn, transform="json" if as_json else None, max_age=max_age, force_fetch=fresh
        )
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise ConfigurationError(f"cannot read the secret named by {setting}={arn}: {exc}") from exc


def _read_through_extension(port: str, arn: str, *, setting: str, fresh: bool) -> str:
    """The SecretString the extension answers (GetSecretValue's JSON); a refusal (a wrong token,
    no permission, no such secret) or no extension listening is a ConfigurationError."""
    token = os.environ.get("AWS_SESSION_TOKEN")
    if not token:
        raise ConfigurationError(
            f"cannot read the secret named by {setting}: the extension needs AWS_SESSION_TOKEN (unset)"
        )
    query = {"secretId": arn} | ({"refreshNow": "true"} if fresh else {})
    where = f"the Parameters and Secrets extension on localhost:{port} ({EXTENSION_PORT})"
    try:
        connection = http.client.HTTPConnection("localhost", int(port), timeout=EXTENSION_TIMEOUT_SECONDS)
        try:
            connection.request(
                "GET", f"/secretsmanager/get?{urlencode(query)}", headers={EXTENSION_TOKEN_HEADER: token}
            )
            response = connection.getresponse()
            status, body = response.status, response.read().decode(errors="replace")
        finally:
            connection.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise ConfigurationError(
            f"cannot reach {where} to read the secret named by {setting}: {exc}"
        ) from exc
    if status != http.client.OK:
        raise ConfigurationError(
            f"cannot read the secret named by {setting}={arn}: {where} answered {status}: {body.strip()}"
        )
    try:
        secret = json.loads(body)["SecretString"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"the secret named by {setting}={arn}: {where} answered no SecretString ({exc})"
        ) from exc
    return str(secret)
