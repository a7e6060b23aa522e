"""The prerequisites of a deployment, checked in the account before `cdk deploy` creates anything.

`make deploy` runs `python -m cdk.preflight -c env=<env> [-c key=value ...]` first. It reads the
context as the app does (cdk.json, then `-c`), and checks what the stacks use but never create, or
what would fail only halfway through a deployment:
- the Node.js that runs the CDK: a release the installed jsii runtime still supports;
- the edge's TLS secret with its three PEM fields, its server certificate usable for clientAuth
  too (the task's health check calls the edge under mTLS with it; without, the service never
  becomes healthy and the deployment rolls back);
- the account's Lambda concurrency: what the environment reserves must leave the 100 Lambda
  keeps unreserved;
- SES: in prod the sender's domain verified, the account out of the sandbox, and a daily quota
  and sending rate for the expected volume; in dev a note when the account is in the sandbox;
- the CDK deploy role's grant to read the SSM parameters the stacks share (cdk/references.py):
  without it the first change set that reads one fails.
(A missing sender, one at an example domain, a missing gateway URL or customer callback URL
already stop the synthesis, see cdk/app.py.) Each problem is one `error:` line, each note a
`note:` line; the exit status is 1 if any problem.
"""

import argparse
import datetime
import fnmatch
import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import jsii
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cdk import constants as c
from cdk.order_paths import notices_per_order, repository_definitions
from cdk.references import DEPLOY_ROLE, STACK_VALUES_POLICY, stack_values_policy
from order_saga.manifest import STATE_MACHINE_STEPS, resource_name

TLS_FIELDS = ("cert", "key", "client_ca")


@dataclass
class Findings:
    """What the checks found: problems stop the deployment, notes only inform."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def context(pairs: list[str]) -> dict[str, Any]:
    """cdk.json's context with `key=value` pairs over it."""
    merged: dict[str, Any] = json.loads((c.REPO_ROOT / "cdk.json").read_text())["context"]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"-c {pair}: expected key=value")
        merged[key] = value
    return merged


def tls_problems(secrets: Any, env: str) -> list[str]:
    name = c.edge_tls_secret_name(env)
    try:
        value = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    except ClientError as exc:
        return [f"the edge's TLS secret {name} is missing or unreadable ({exc.response['Error']['Code']})"]
    except (KeyError, json.JSONDecodeError):
        return [f"the edge's TLS secret {name} is not JSON with the fields {', '.join(TLS_FIELDS)}"]
    missing = [f for f in TLS_FIELDS if "-----BEGIN" not in str(value.get(f, ""))]
    if missing:
        return [f"the edge's TLS secret {name} lacks PEM fields: {', '.join(missing)}"]
    return certificate_problems(str(value["cert"]), name)


def certificate_problems(pem: str, name: str) -> list[str]:
    """The server certificate (the first of the chain) must allow clientAuth besides serverAuth:
    the task's health check presents it as its client certificate under mTLS."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        return [f"the edge's TLS secret {name} has a `cert` that is not a PEM certificate ({exc})"]
    try:
        usages = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []  # no extended key usage: every usage is allowed
    wanted = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}
    lacking = [label for oid, label in wanted.items() if oid not in usages]
    if lacking:
        return [
            f"the edge's server certificate in {name} lacks the extended key usage {', '.join(lacking)}: "
            "the task's health check presents it under mTLS, and the deployment would roll back "
            "(docs/deploy.md, One-time bootstrap)"
        ]
    return []


def sender_problems(ses: Any, sender: str) -> list[str]:
    domain = c.sender_domain(sender)
    attributes = ses.get_identity_verification_attributes(Identities=[domain])["VerificationAttributes"]
    status = attributes.get(domain, {}).get("VerificationStatus", "absent")
    if status != "Success":
        return [f"the SES identity {domain} (of emailSender {sender}) is not verified for sending: {status}"]
    return []


# The volume the prod account must be able to mail: a million orders a month at the e-mails an
# order sends over the cost estimate's mix of outcomes (cdk/order_paths.py), as a day's share,
# and the rate of the notifier's concurrent senders.
EXPECTED_ORDERS_PER_MONTH = 1_000_000
EMAILS_PER_ORDER = notices_per_order(repository_definitions())
DAILY_EMAILS = math.ceil(round(EXPECTED_ORDERS_PER_MONTH * EMAILS_PER_ORDER / 30, 6))
EMAILS_PER_SECOND = c.NOTIFICATION_SENDERS * 10


def ses_account_findings(sesv2: Any, env: str) -> Findings:
    """SES's account: production access (out of the sandbox) and the sending quota."""
    account = sesv2.get_account()
    quota = account.get("SendQuota", {})
    daily, rate = float(quota.get("Max24HourSend", 0)), float(quota.get("MaxSendRate", 0))
    found = Findings()
    if env != "prod":
        if not account.get("ProductionAccessEnabled", False):
            found.notes.append(
                "the account is in the SES sandbox: mail reaches only verified addresses (verify the "
                "ones you test with; the notifier's grant covers them)"
            )
        return found
    if not account.get("ProductionAccessEnabled", False):
        found.problems.append(
            "the account is in the SES sandbox: customers' addresses are refused; ask for production access"
        )
    if daily < DAILY_EMAILS:
        found.problems.append(
            f"SES sends at most {daily:,.0f} e-mails a day; {EXPECTED_ORDERS_PER_MONTH:,} orders a month "
            f"need {DAILY_EMAILS:,}: ask for a higher sending quota"
        )
    if rate < EMAILS_PER_SECOND:
        found.problems.append(
            f"SES sends at most {rate:g} e-mails a second; the notifier sends up to {EMAILS_PER_SECOND}: "
            "ask for a higher sending rate"
        )
    return found


# Lambda refuses a reservation that would leave fewer unreserved than this.
UNRESERVED_MINIMUM = 100


def concurrency_problems(lam: Any, config: c.EnvironmentConfig) -> list[str]:
    """What the environment reserves, against what the account leaves unreserved (its own
    functions' reservations, on a redeploy, count as free again)."""
    limit = lam.get_account_settings()["AccountLimit"]
    own = 0
    for step in STATE_MACHINE_STEPS:
        try:
            reply = lam.get_function_concurrency(FunctionName=resource_name(config.name, step))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            continue
        own += int(reply.get("ReservedConcurrentExecutions", 0))
    left = int(limit["UnreservedConcurrentExecutions"]) + own - config.reserved_concurrency_total
    if left >= UNRESERVED_MINIMUM:
        return []
    return [
        f"the account's Lambda concurrency ({limit['ConcurrentExecutions']}) would leave {left} unreserved "
        f"once {config.name} reserves {config.reserved_concurrency_total}; Lambda keeps "
        f"{UNRESERVED_MINIMUM}: ask for a higher quota (Service Quotas, Lambda concurrent executions)"
    ]


# The jsii runtime the CDK's Python bindings run on names the Node.js releases it supports; the
# CDK stops supporting a release six months after its end of life unless the table says otherwise.
JSII_RUNTIME = Path(jsii.__file__).parent / "_embedded" / "jsii" / "bin__jsii-runtime.js"
NODE_RELEASE = re.compile(r"new NodeRelease\((\d+),\{([^}]*)\}\)")
EXTENDED_SUPPORT_MONTHS = 6


@dataclass(frozen=True)
class NodeRelease:
    major: int
    supported_until: datetime.date | None  # None: never supported (untested)


def _date(text: str, key: str) -> datetime.date | None:
    found = re.search(key + r':new Date\("(\d{4}-\d{2}-\d{2})"\)', text)
    return datetime.date.fromisoformat(found.group(1)) if found else None


def node_releases(runtime_js: str) -> dict[int, NodeRelease]:
    """The release table of the jsii runtime's source."""
    releases = {}
    for major, body in NODE_RELEASE.findall(runtime_js):
        until = _date(body, "endOfJsiiSupport")
        end_of_life = _date(body, "endOfLife")
        if until is None and end_of_life is not None:
            month = end_of_life.month - 1 + EXTENDED_SUPPORT_MONTHS
            until = end_of_life.replace(year=end_of_life.year + month // 12, month=month % 12 + 1)
        releases[int(major)] = NodeRelease(int(major), None if "untested:!0" in body else until)
    return releases


def node_problems(version: str | None, releases: dict[int, NodeRelease], today: datetime.date) -> list[str]:
    """`version` (`node --version`) against the runtime's table."""
    supported = sorted(r.major for r in releases.values() if r.supported_until and r.supported_until > today)
    choose = f"install Node.js {' or '.join(map(str, supported))}"
    if version is None:
        return [f"no Node.js (`node`) on the PATH: the CDK runs on it; {choose}"]
    major = int(version.lstrip("v").split(".")[0])
    if major not in supported:
        return [
            f"Node.js {version} is not a release the installed CDK (jsii {jsii.__version__}) "
            f"supports: {choose}"
        ]
    return []


def installed_node() -> str | None:
    """`node --version` of the `node` the CDK command line will run (the PATH's), None without one."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)  # noqa: S603 - a fixed command
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _allows(statement: dict[str, Any], action: str, resource: str) -> bool:
    def listed(key: str) -> list[str]:
        value = statement.get(key, [])
        return [value] if isinstance(value, str) else list(value)

    return (
        statement.get("Effect") == "Allow"
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in listed("Action"))
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in listed("Resource"))
    )


def stack_values_problems(iam: Any, account: str, region: str, env: str) -> list[str]:
    """The deploy role may read the parameters this environment's stacks share."""
    role = DEPLOY_ROLE.format(account=account, region=region)
    parameter = f"arn:aws:ssm:{region}:{account}:parameter/{c.PROJECT}-{env}-Network/value"
    try:
        document = iam.get_role_policy(RoleName=role, PolicyName=STACK_VALUES_POLICY)["PolicyDocument"]
    except iam.exceptions.NoSuchEntityException:
        document = {"Statement": []}
    statements = document["Statement"]
    statements = [statements] if isinstance(statements, dict) else statements
    if any(_allows(s, "ssm:GetParameters", parameter) for s in statements):
        return []
    policy = json.dumps(stack_values_policy(account, region), separators=(",", ":"))
    return [
        f"the CDK deploy role {role} may not read the SSM parameters the stacks share; grant it once: "
        f"aws iam put-role-policy --role-name {role} --policy-name {STACK_VALUES_POLICY} "
        f"--policy-document '{policy}'"
    ]


def problems(settings: dict[str, Any], session: boto3.Session, node: str | None) -> Findings:
    env = str(settings.get("env", "dev"))
    region = str(settings["region"])
    found = Findings(node_problems(node, node_releases(JSII_RUNTIME.read_text()), datetime.date.today()))
    found.problems += tls_problems(session.client("secretsmanager", region_name=region), env)
    found.problems += concurrency_problems(
        session.client("lambda", region_name=region), c.environment_config(env)
    )
    if env == "prod":
        found.problems += sender_problems(
            session.client("ses", region_name=region), str(settings["emailSender"])
        )
    ses = ses_account_findings(session.client("sesv2", region_name=region), env)
    found.problems += ses.problems
    found.notes += ses.notes
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    found.problems += stack_values_problems(session.client("iam"), account, region, env)
    return found


def main(argv: list[str] | None = None, session: boto3.Session | None = None, node: str | None = None) -> int:
    """`node`: the Node.js version to check (`node --version` on the PATH when not given)."""
    parser = argparse.ArgumentParser(description="Check a deployment's prerequisites in the account")
    parser.add_argument("-c", dest="pairs", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        found = problems(context(args.pairs), session or boto3.Session(), node or installed_node())
    except (ValueError, BotoCoreError, ClientError) as exc:
        found = Findings([str(exc)])
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in found.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if found.problems else 0


if __name__ == "__main__":
    sys.exit(main())
