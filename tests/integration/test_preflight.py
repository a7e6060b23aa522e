"""The deployment's prerequisites, checked in a (moto) account before anything is created."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID

from cdk import constants as c
from cdk import preflight
from order_saga.manifest import STATE_MACHINE_STEPS, resource_name

REGION = "eu-west-1"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PROD = ["-c", "env=prod", "-c", f"region={REGION}", "-c", "emailSender=orders@shop.test"]


@dataclass
class LambdaQuota:
    """The account's Lambda concurrency, answered for GetAccountSettings, which moto does not
    implement: the account's limit, less what moto's functions reserve (PutFunctionConcurrency)."""

    limit: int = 1000

    def answer(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        functions = lambda_backends[DEFAULT_ACCOUNT_ID][REGION].list_functions()
        reserved = sum(int(fn.reserved_concurrency or 0) for fn in functions)
        limits = {"ConcurrentExecutions": self.limit, "UnreservedConcurrentExecutions": self.limit - reserved}
        return SimpleNamespace(status_code=200), {"AccountLimit": limits}


@pytest.fixture
def quota() -> LambdaQuota:
    return LambdaQuota()


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch, quota: LambdaQuota) -> Iterator[boto3.Session]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        session.events.register("before-call.lambda.GetAccountSettings", quota.answer)  # type: ignore[arg-type]
        yield session


def put_tls_secret(session: boto3.Session, env: str, fields: dict[str, str]) -> None:
    session.client("secretsmanager").create_secret(
        Name=c.edge_tls_secret_name(env), SecretString=json.dumps(fields)
    )


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_an_account_with_every_prerequisite_passes(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tls_secret(session, "prod", {"cert": PEM, "key": PEM, "client_ca": PEM})
    session.client("ses").verify_domain_identity(Domain="shop.test")
    assert preflight.main(PROD, session) == 0
    assert errors(capsys) == []


def test_a_missing_tls_secret_and_an_unverified_domain_are_named(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preflight.main(PROD, session) == 1
    found = errors(capsys)
    assert len(found) == 2
    assert "order-saga/prod/edge-tls is missing" in found[0]
    assert "shop.test (of emailSender orders@shop.test) is not verified" in found[1]


def test_a_tls_secret_without_a_pem_field_is_refused(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tls_secret(session, "dev", {"cert": PEM, "key": "", "client_ca": PEM})
    assert preflight.main(["-c", "env=dev", "-c", f"region={REGION}"], session) == 1
    assert errors(capsys) == ["error: the edge's TLS secret order-saga/dev/edge-tls lacks PEM fields: key"]


def test_dev_needs_no_verified_domain(session: boto3.Session, capsys: pytest.CaptureFixture[str]) -> None:
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    assert preflight.main(["-c", "env=dev", "-c", f"region={REGION}"], session) == 0


def test_a_context_value_without_a_key_is_refused(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preflight.main(["-c", "prod"], session) == 1
    assert errors(capsys) == ["error: -c prod: expected key=value"]


def test_an_account_whose_concurrency_cannot_take_prods_reservation_is_refused(
    session: boto3.Session, quota: LambdaQuota, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a new account's small quota: 400 concurrent executions, none reserved yet
    quota.limit = 400
    put_tls_secret(session, "prod", {"cert": PEM, "key": PEM, "client_ca": PEM})
    session.client("ses").verify_domain_identity(Domain="shop.test")
    # When prod (which reserves 400 for its steps) is checked, then it is refused, saying why
    assert preflight.main(PROD, session) == 1
    [problem] = errors(capsys)
    assert "would leave 0 unreserved once prod reserves 400; Lambda keeps 100" in problem
    # while dev, which reserves nothing, fits the same account
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    assert preflight.main(["-c", "env=dev", "-c", f"region={REGION}"], session) == 0


def deploy_functions(session: boto3.Session, env: str, reserved: int) -> None:
    """The environment's steps as a deploy leaves them: each function reserving `reserved`."""
    role = session.client("iam").create_role(RoleName=f"{env}-step", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = session.client("lambda")
    for step in STATE_MACHINE_STEPS:
        name = resource_name(env, step)
        lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler="h.h", Code={"ZipFile": b"PK"}
        )
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)


def test_a_redeploy_counts_what_the_environment_already_reserves_as_free(
    session: boto3.Session, quota: LambdaQuota, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account of 600 where prod is deployed: its 8 steps reserve 50 each, 200 left
    quota.limit = 600
    deploy_functions(session, "prod", 50)
    assert session.client("lambda").get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 200
    put_tls_secret(session, "prod", {"cert": PEM, "key": PEM, "client_ca": PEM})
    session.client("ses").verify_domain_identity(Domain="shop.test")
    # When prod is checked again, its own 400 count as free: 600 - 400 leaves 200, enough
    assert preflight.main(PROD, session) == 0, errors(capsys)
    # while another account function reserving 150 more leaves 50 once prod reserves again
    deploy_functions(session, "other", 0)
    session.client("lambda").put_function_concurrency(
        FunctionName=resource_name("other", STATE_MACHINE_STEPS[0]), ReservedConcurrentExecutions=150
    )
    assert preflight.main(PROD, session) == 1
    assert "would leave 50 unreserved once prod reserves 400" in errors(capsys)[0]
