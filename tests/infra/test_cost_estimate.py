"""The cost script reads the synthesized templates: what it counts is what the code deploys."""

import re
from pathlib import Path

import pytest

from cdk import cost_estimate
from tests.support.synth import Synthesized

ORDERS = 1_000_000


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cost_estimate.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def amount(output: str, item: str) -> float:
    match = re.search(rf"^  {re.escape(item)} .*\$\s*([\d,]+\.\d\d)$", output, re.MULTILINE)
    assert match, f"no line {item!r} in:\n{output}"
    return float(match.group(1).replace(",", ""))


def test_the_estimate_counts_what_the_templates_deploy(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the script reads the environment's templates at one million orders
    status, out, _ = run(capsys, "--cdk-out", str(synthesized.directory), "--orders", str(ORDERS))
    assert status == 0
    # Then every counted part matches the templates
    endpoints = [
        e["Properties"]
        for e in synthesized.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    azs = sum(len(e["SubnetIds"]) for e in endpoints)
    assert f"{len(endpoints)} x AZs = {azs}" in out
    assert amount(out, "Interface endpoints") == pytest.approx(azs * 0.01 * 730, abs=0.01)
    nats = len(synthesized.resources("Network", "AWS::EC2::NatGateway"))
    assert amount(out, "NAT gateways") == pytest.approx(nats * 0.045 * 730, abs=0.01)
    tasks = synthesized.resources("Edge", "AWS::ECS::Service")
    (service,) = tasks.values()
    assert f"{service['Properties']['DesiredCount']} x (" in out
    # And MySQL 8.4 owes no Extended Support, while the line says what 8.0 would cost
    assert amount(out, "RDS Extended Support") == 0.0
    for item in (
        "Public IPv4",
        "SES",
        "Cognito token requests",
        "Endpoint data processing",
        "Managed Prometheus ingestion",
    ):
        assert amount(out, item) > 0, item
    # And the total is the sum of its lines
    lines = [
        float(v.replace(",", ""))
        for v in re.findall(r"^  (?!subtotal|total|per 1M).*\$\s*([\d,]+\.\d\d)$", out, re.MULTILINE)
    ]
    assert amount(out, "total") == pytest.approx(sum(lines), abs=0.05)


def test_a_token_per_call_costs_what_caching_saves(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    _, cached, _ = run(capsys, "--cdk-out", str(synthesized.directory), "--orders", str(ORDERS))
    _, per_call, _ = run(
        capsys, "--cdk-out", str(synthesized.directory), "--orders", str(ORDERS), "--token-per-call"
    )
    assert amount(per_call, "Cognito token requests") == pytest.approx(2250.0)
    assert amount(cached, "Cognito token requests") < 2.0


def test_without_templates_the_script_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "--cdk-out", str(tmp_path), "--orders", "10")
    assert status == 1
    assert out == ""
    assert err.strip().endswith("run `make synth` (CDK_ENV=dev|prod) first")
    assert len(err.strip().splitlines()) == 1


def test_shoppers_are_billed_by_the_plan_of_the_pool_and_only_machine_clients_as_m2m(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--cdk-out", str(synthesized.directory), "--orders", str(ORDERS))
    # prod's pool is on Plus (threat protection), dev's on Essentials
    per_shopper = 0.020 if synthesized.env == "prod" else 0.015
    shoppers = ORDERS / cost_estimate.ORDERS_PER_ACTIVE_SHOPPER
    assert amount(out, "Cognito active shoppers") == pytest.approx(shoppers * per_shopper, abs=0.01)
    # Two app clients, one of them M2M: the customer app's tokens are paid for by its shoppers
    assert len(synthesized.resources("Edge", "AWS::Cognito::UserPoolClient")) == 2
    assert amount(out, "Cognito M2M app clients") == pytest.approx(6.00)
