"""The prerequisites of a deployment, checked in the account before `cdk deploy` creates anything.

`make deploy` runs `python -m cdk.preflight -c env=<env> [-c key=value ...]` first. It reads the
context as the app does (cdk.json, then `-c`), and checks what the stacks use but never create:
the edge's TLS secret with its three PEM fields, the account's Lambda concurrency (what the
environment reserves must leave the 100 Lambda keeps unreserved), and in prod the SES identity of
the sender's domain, verified for sending. (A sender at an example domain, a missing gateway URL or
customer callback URL already stop the synthesis, see cdk/app.py.) Each problem is one line; the
exit status is 1 if any.
"""

import argparse
import json
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cdk import constants as c
from order_saga.manifest import STATE_MACHINE_STEPS, resource_name

TLS_FIELDS = ("cert", "key", "client_ca")


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
    return [f"the edge's TLS secret {name} lacks PEM fields: {', '.join(missing)}"] if missing else []


def sender_problems(ses: Any, sender: str) -> list[str]:
    domain = c.sender_domain(sender)
    attributes = ses.get_identity_verification_attributes(Identities=[domain])["VerificationAttributes"]
    status = attributes.get(domain, {}).get("VerificationStatus", "absent")
    if status != "Success":
        return [f"the SES identity {domain} (of emailSender {sender}) is not verified for sending: {status}"]
    return []


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


def problems(settings: dict[str, Any], session: boto3.Session) -> list[str]:
    env = str(settings.get("env", "dev"))
    region = str(settings["region"])
    found = tls_problems(session.client("secretsmanager", region_name=region), env)
    found += concurrency_problems(session.client("lambda", region_name=region), c.environment_config(env))
    if env == "prod":
        found += sender_problems(session.client("ses", region_name=region), str(settings["emailSender"]))
    return found


def main(argv: list[str] | None = None, session: boto3.Session | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a deployment's prerequisites in the account")
    parser.add_argument("-c", dest="pairs", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        found = problems(context(args.pairs), session or boto3.Session())
    except (ValueError, BotoCoreError, ClientError) as exc:
        found = [str(exc)]
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
