"""The deployment's prerequisites, checked in a (moto) account before anything is created."""

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto import mock_aws
from moto.awslambda.models import lambda_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from cdk import constants as c
from cdk import preflight
from cdk.references import DEPLOY_ROLE, STACK_VALUES_POLICY, stack_values_policy
from order_saga.manifest import STATE_MACHINE_STEPS, resource_name

REGION = "eu-west-1"
PROD = ["-c", "env=prod", "-c", f"region={REGION}", "-c", "emailSender=orders@shop.test"]
DEV = ["-c", "env=dev", "-c", f"region={REGION}"]
NODE = "v22.12.0"  # a release the installed CDK supports (the machine's own may not be)
BOTH_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def certificate(usages: tuple[x509.ObjectIdentifier, ...] | None = BOTH_USAGES) -> str:
    """A self-signed certificate as PEM, with these extended key usages (None: no extension)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orders.shop.test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


PEM = certificate()


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


@dataclass
class SesAccount:
    """SES's account (sesv2 GetAccount, which moto does not implement): a production account
    with the quota the expected volume needs unless a test says otherwise."""

    production: bool = True
    daily: int = 50_000
    rate: int = 20

    def answer(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        quota = {"Max24HourSend": self.daily, "MaxSendRate": self.rate, "SentLast24Hours": 0}
        return SimpleNamespace(status_code=200), {
            "ProductionAccessEnabled": self.production,
            "SendQuota": quota,
        }


@pytest.fixture
def quota() -> LambdaQuota:
    return LambdaQuota()


@pytest.fixture
def ses_account() -> SesAccount:
    return SesAccount()


@pytest.fixture
def session(
    monkeypatch: pytest.MonkeyPatch, quota: LambdaQuota, ses_account: SesAccount
) -> Iterator[boto3.Session]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        session.events.register("before-call.lambda.GetAccountSettings", quota.answer)  # type: ignore[arg-type]
        session.events.register("before-call.sesv2.GetAccount", ses_account.answer)  # type: ignore[arg-type]
        bootstrap(session)
        yield session


def bootstrap(session: boto3.Session) -> str:
    """The account as `cdk bootstrap` and docs/deploy.md's one-time grant leave it: the deploy role
    may read the parameters the stacks share. Returns the role's name."""
    role = DEPLOY_ROLE.format(account=DEFAULT_ACCOUNT_ID, region=REGION)
    iam = session.client("iam")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")
    policy = json.dumps(stack_values_policy(DEFAULT_ACCOUNT_ID, REGION))
    iam.put_role_policy(RoleName=role, PolicyName=STACK_VALUES_POLICY, PolicyDocument=policy)
    return role


def put_tls_secret(session: boto3.Session, env: str, fields: dict[str, str]) -> None:
    session.client("secretsmanager").create_secret(
        Name=c.edge_tls_secret_name(env), SecretString=json.dumps(fields)
    )


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def prepared_prod(session: boto3.Session) -> None:
    """Prod's prerequisites in the account: the TLS secret and the verified domain."""
    put_tls_secret(session, "prod", {"cert": PEM, "key": PEM, "client_ca": PEM})
    session.client("ses").verify_domain_identity(Domain="shop.test")


def test_an_account_with_every_prerequisite_passes(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    prepared_prod(session)
    assert preflight.main(PROD, session, NODE) == 0
    assert errors(capsys) == []


def test_a_missing_tls_secret_and_an_unverified_domain_are_named(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preflight.main(PROD, session, NODE) == 1
    found = errors(capsys)
    assert len(found) == 2
    assert "order-saga/prod/edge-tls is missing" in found[0]
    assert "shop.test (of emailSender orders@shop.test) is not verified" in found[1]


def test_a_tls_secret_without_a_pem_field_is_refused(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tls_secret(session, "dev", {"cert": PEM, "key": "", "client_ca": PEM})
    assert preflight.main(DEV, session, NODE) == 1
    assert errors(capsys) == ["error: the edge's TLS secret order-saga/dev/edge-tls lacks PEM fields: key"]


def test_dev_needs_no_verified_domain(session: boto3.Session, capsys: pytest.CaptureFixture[str]) -> None:
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    assert preflight.main(DEV, session, NODE) == 0


def test_a_context_value_without_a_key_is_refused(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preflight.main(["-c", "prod"], session, NODE) == 1
    assert errors(capsys) == ["error: -c prod: expected key=value"]


def test_an_account_whose_concurrency_cannot_take_prods_reservation_is_refused(
    session: boto3.Session, quota: LambdaQuota, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a new account's small quota: 400 concurrent executions, none reserved yet
    quota.limit = 400
    prepared_prod(session)
    # When prod (which reserves 400 for its steps) is checked, then it is refused, saying why
    assert preflight.main(PROD, session, NODE) == 1
    [problem] = errors(capsys)
    assert "would leave 0 unreserved once prod reserves 400; Lambda keeps 100" in problem
    # while dev, which reserves nothing, fits the same account
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    assert preflight.main(DEV, session, NODE) == 0


def deploy_functions(session: boto3.Session, env: str, reserved: int) -> None:
    """The environment's steps as a deploy leaves them: each function reserving `reserved`."""
    role = session.client("iam").create_role(RoleName=f"{env}-step", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
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
    assert (
        session.client("lambda").get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
        == 200
    )
    prepared_prod(session)
    # When prod is checked again, its own 400 count as free: 600 - 400 leaves 200, enough
    assert preflight.main(PROD, session, NODE) == 0, errors(capsys)
    # while another account function reserving 150 more leaves 50 once prod reserves again
    deploy_functions(session, "other", 0)
    session.client("lambda").put_function_concurrency(
        FunctionName=resource_name("other", STATE_MACHINE_STEPS[0]), ReservedConcurrentExecutions=150
    )
    assert preflight.main(PROD, session, NODE) == 1
    assert "would leave 50 unreserved once prod reserves 400" in errors(capsys)[0]


@pytest.mark.parametrize(
    ("usages", "lacking"),
    [((ExtendedKeyUsageOID.SERVER_AUTH,), "clientAuth"), ((ExtendedKeyUsageOID.CLIENT_AUTH,), "serverAuth")],
)
def test_a_server_certificate_without_both_usages_is_refused(
    session: boto3.Session,
    capsys: pytest.CaptureFixture[str],
    usages: tuple[x509.ObjectIdentifier],
    lacking: str,
) -> None:
    # Given a server certificate the task's mTLS health check could not present (or serve with)
    put_tls_secret(session, "dev", {"cert": certificate(usages), "key": PEM, "client_ca": PEM})
    # Then the preflight refuses it, naming the usage: the deployment would roll back
    assert preflight.main(DEV, session, NODE) == 1
    [problem] = errors(capsys)
    assert f"server certificate in order-saga/dev/edge-tls lacks the extended key usage {lacking}" in problem


def test_a_server_certificate_without_extended_key_usages_allows_every_use(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tls_secret(session, "dev", {"cert": certificate(None), "key": PEM, "client_ca": PEM})
    assert preflight.main(DEV, session, NODE) == 0, errors(capsys)


def test_prod_refuses_the_ses_sandbox_and_a_quota_below_the_expected_volume(
    session: boto3.Session, ses_account: SesAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given prod's prerequisites in an account SES keeps in the sandbox (200 a day, 1 a second)
    prepared_prod(session)
    ses_account.production, ses_account.daily, ses_account.rate = False, 200, 1
    # Then each limit is named with what it needs
    assert preflight.main(PROD, session, NODE) == 1
    found = errors(capsys)
    assert len(found) == 3
    assert "in the SES sandbox" in found[0]
    assert "at most 200 e-mails a day; 1,000,000 orders a month need 34,000" in found[1]
    assert "at most 1 e-mails a second; the notifier sends up to 20" in found[2]


def test_dev_in_the_ses_sandbox_passes_with_a_note(
    session: boto3.Session, ses_account: SesAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    ses_account.production = False
    assert preflight.main(DEV, session, NODE) == 0
    [note] = errors(capsys)
    assert note.startswith("note: the account is in the SES sandbox: mail reaches only verified addresses")


def test_a_node_the_installed_cdk_does_not_support_is_refused(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    assert preflight.main(DEV, session, "v16.20.0") == 1
    [problem] = errors(capsys)
    assert "Node.js v16.20.0 is not a release the installed CDK" in problem


def test_a_deploy_role_that_may_not_read_the_shared_values_is_named_with_the_grant(
    session: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account bootstrapped without the one-time grant
    role = DEPLOY_ROLE.format(account=DEFAULT_ACCOUNT_ID, region=REGION)
    session.client("iam").delete_role_policy(RoleName=role, PolicyName=STACK_VALUES_POLICY)
    put_tls_secret(session, "dev", {"cert": PEM, "key": PEM, "client_ca": PEM})
    # When dev is checked, then the problem names the role and the command that grants it
    assert preflight.main(DEV, session, NODE) == 1
    [problem] = errors(capsys)
    assert f"the CDK deploy role {role} may not read the SSM parameters the stacks share" in problem
    assert f"--policy-name {STACK_VALUES_POLICY}" in problem
    assert f"parameter/{c.PROJECT}-*" in problem


@pytest.mark.parametrize(
    ("resource", "allowed"),
    [
        (f"arn:aws:ssm:{REGION}:{DEFAULT_ACCOUNT_ID}:parameter/{c.PROJECT}-*", True),
        (f"arn:aws:ssm:{REGION}:{DEFAULT_ACCOUNT_ID}:parameter/{c.PROJECT}-prod-*", False),
        (f"arn:aws:ssm:us-east-1:{DEFAULT_ACCOUNT_ID}:parameter/{c.PROJECT}-*", False),
        ("*", True),
    ],
)
def test_the_grant_must_cover_the_environments_parameters(
    session: boto3.Session, resource: str, allowed: bool
) -> None:
    role = DEPLOY_ROLE.format(account=DEFAULT_ACCOUNT_ID, region=REGION)
    statement = {"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": resource}
    session.client("iam").put_role_policy(
        RoleName=role,
        PolicyName=STACK_VALUES_POLICY,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    problems = preflight.stack_values_problems(session.client("iam"), DEFAULT_ACCOUNT_ID, REGION, "dev")
    assert (problems == []) is allowed
