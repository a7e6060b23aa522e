"""The cost script reads the synthesized templates: what it counts is what the code deploys, and
docs/deploy.md prints exactly what it prints."""

import re
from pathlib import Path

import pytest

from cdk import constants as c
from cdk import cost_estimate, custom_metrics
from cdk.order_paths import PATHS
from tests.support.synth import Synthesized

ORDERS = 1_000_000
DEPLOY_MD = c.REPO_ROOT / "docs" / "deploy.md"
HEADER = re.compile(r"^Monthly estimate of (\S+) for ([\d,]+) orders \(cdk\.out\), ")


def cost_section() -> str:
    text = DEPLOY_MD.read_text()
    section = text[text.index("## What it costs") :]
    following = section.find("\n## ", 1)
    return section if following < 0 else section[:following]


def printed_blocks() -> list[tuple[str, int, str]]:
    """The script's output blocks in docs/deploy.md: (stacks' prefix, orders, the block)."""
    blocks = re.findall(r"^```\n(.*?)^```$", cost_section(), re.MULTILINE | re.DOTALL)
    found = []
    for block in blocks:
        header = HEADER.match(block)
        if header:
            found.append((header.group(1), int(header.group(2).replace(",", "")), block))
    return found


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


def test_the_documented_output_is_what_the_script_prints(synthesized: Synthesized) -> None:
    # Every block docs/deploy.md shows for this environment, printed again from the templates
    # as they are synthesized now (the header names cdk.out, where `make cost` reads them)
    prefix = f"{c.PROJECT}-{synthesized.env}"
    blocks = [(orders, block) for name, orders, block in printed_blocks() if name == prefix]
    assert blocks, f"docs/deploy.md shows no output of {prefix}"
    for orders, block in blocks:
        printed = cost_estimate.report(synthesized.directory, orders)
        expected = "\n".join(printed).replace(f"({synthesized.directory})", "(cdk.out)") + "\n"
        assert block == expected, f"docs/deploy.md's {prefix} block at {orders:,} orders is stale"


def test_every_documented_block_is_of_an_environment_the_tests_synthesize() -> None:
    names = {name for name, _, _ in printed_blocks()}
    assert names == {f"{c.PROJECT}-dev", f"{c.PROJECT}-prod"}


def test_failed_executions_invoke_the_watchdog_and_notices_the_notifier(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--cdk-out", str(synthesized.directory), "--orders", str(ORDERS))
    rows = {
        line[2:32].strip(): line[32:].split()
        for line in out.splitlines()
        if line.startswith("  ") and "%" in line[32:44]
    }
    # share, transitions, invocations, notices, watchdog, log KB
    assert rows["confirmed"][1:5] == ["5", "4", "1", "0"]
    assert rows["payment declined"][1:5] == ["8", "6", "1", "1"]  # 4 steps, notifier, watchdog
    assert rows["cancelled while pending"][4] == "1"  # the saga ends FAILED too
    assert rows["cancelled when confirmed"][1:5] == ["12", "8", "2", "0"]  # OrderCancellation succeeds
    # A trace per execution, and one per notifier and watchdog invocation
    mean = next(line for line in out.splitlines() if line.startswith("  mean"))
    _, invocations, notices, watchdog = (float(v) for v in mean.split()[1:5])
    executions = sum(path.share * len(path.runs) for path in PATHS)
    assert re.search(rf"X-Ray traces +{executions + notices + watchdog:.2f} per order", out)
    assert amount(out, "Lambda requests") == pytest.approx(ORDERS * invocations * 0.0000002, abs=0.01)


def test_custom_metrics_and_container_insights_are_counted(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--cdk-out", str(synthesized.directory), "--orders", str(ORDERS))
    functions = len(custom_metrics.function_metric_set())
    # The edge's collector publishes its handled-RPC counter by gRPC code
    assert f"{functions} of the functions + 17 of the edge" in out
    assert amount(out, "Custom metrics (EMF)") == pytest.approx((functions + 17) * 0.30, abs=0.01)
    # The edge's cluster enables Container Insights: one cluster, one service, one task family
    (cluster,) = synthesized.resources("Edge", "AWS::ECS::Cluster").values()
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"]["ClusterSettings"]
    assert "31 metrics + " in out
    assert amount(out, "Container Insights") > 31 * 0.30
