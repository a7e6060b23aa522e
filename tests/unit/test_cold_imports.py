"""What a function's cold start imports: each handler in a new interpreter, as the Lambda runtime
loads it (its code folder as the working directory, the layer on the path, the function's
environment), and the heavy modules it must not load before it needs them."""

import json
import subprocess
import sys

import pytest

from devstack.paths import REPO_ROOT
from order_saga.functions import FUNCTIONS, FunctionSpec, Needs

LAYER = REPO_ROOT / "layers" / "common" / "python"
WATCHED = (
    "boto3",
    "redis",
    "pydantic_settings",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parameters",
    "aws_xray_sdk",
)
# Never needed by a function: a DynamoDB idempotency layer, a settings framework, the X-Ray SDK
# while tracing is off.
NEVER = {"pydantic_settings", "aws_lambda_powertools.utilities.idempotency", "aws_xray_sdk"}
# The functions that call AWS on every invocation (SES, Step Functions), so import boto3 at once.
EVERY_CALL_USES_AWS = {Needs.EMAIL, Needs.SAGA_CONTROL}
# The functions that never touch Redis.
WITHOUT_REDIS = {"SendNotification", "ReconcilePayments"}
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-app-AbCdEf"


def imported(spec: FunctionSpec, **environment: str) -> set[str]:
    """The watched modules that importing the function's handler module loads."""
    module = spec.handler.rsplit(".", 1)[0]
    code = f"import sys, json, {module}; print(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LAYER), "AWS_DEFAULT_REGION": "eu-west-1"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT / spec.code_dir,
        env=env | spec.all_environment | environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_a_handler_imports_only_what_its_first_call_needs(spec: FunctionSpec) -> None:
    loaded = imported(spec)
    assert not loaded & NEVER
    assert ("boto3" in loaded) == bool(spec.needs & EVERY_CALL_USES_AWS)
    assert "aws_lambda_powertools.utilities.parameters" not in loaded  # no secret named: no read
    assert ("redis" in loaded) == (spec.name not in WITHOUT_REDIS)


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_deployed_a_handler_reads_its_secrets_without_an_sdk(spec: FunctionSpec) -> None:
    # Deployed (and on the local stack), every function reads its database credentials from a
    # secret, through the Parameters and Secrets extension: neither boto3 nor Powertools parameters
    loaded = imported(spec, MYSQL_SECRET_ARN=SECRET, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="2773")
    assert ("boto3" in loaded) == bool(spec.needs & EVERY_CALL_USES_AWS)
    assert "aws_lambda_powertools.utilities.parameters" not in loaded
    assert not loaded & NEVER


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_without_the_extension_a_named_secret_loads_the_secrets_client_at_start(spec: FunctionSpec) -> None:
    # The code outside Lambda (the edge, the tools) reads its secrets with boto3, loaded at start
    loaded = imported(spec, MYSQL_SECRET_ARN=SECRET)
    assert {"boto3", "aws_lambda_powertools.utilities.parameters"} <= loaded
    assert not loaded & NEVER
