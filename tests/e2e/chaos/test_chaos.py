"""The chaos campaign on the local stack: a seeded run with every kind of fault, audited; and a
run with a compensation that does nothing, which the campaign must fail."""

import json

import pytest

from devstack.chaos import Campaign, ChaosStack
from devstack.chaos_plan import INFRA_KINDS, CampaignPlan, FaultEvent, OrderPlan
from devstack.faults import FaultKind
from tests.e2e.stack import LocalStack
from tests.integration.test_devstack import cli

SEED = 20261124
ORDERS = 150


@pytest.mark.timeout(1500)  # a campaign, not a unit: minutes on a loaded machine
def test_a_seeded_campaign_with_every_fault_kind_keeps_the_books(stack: LocalStack) -> None:
    # Given the seeded plan of 150 orders by 6 clients, run as developers run it
    saved = stack.state_dir / "chaos" / f"e2e-{SEED}-{ORDERS}.json"  # for whoever investigates a failure
    campaign = cli(
        "chaos", "--orders", str(ORDERS), "--clients", "6", "--seed", str(SEED), "--report", str(saved),
        env=stack.env, timeout=1400,
    )  # fmt: skip
    output = campaign.stdout + campaign.stderr
    result = json.loads(saved.read_text())
    # Then at least one of each fault kind was injected: every Lambda fault kind, gateway trouble,
    # client action and infrastructure fault
    injected = {kind.split(":")[-1] for kind in result["injections"] if kind.startswith("lambda:")}
    assert {kind.value for kind in (FaultKind.ERROR, FaultKind.DELAY, FaultKind.DUPLICATE)} <= injected, (
        output
    )
    for kind in (
        "gateway-unavailable",
        "gateway-slow",
        "gateway-answer-lost",
        "client:duplicate-create",
        "client:cancel-pending",
        "client:cancel-mid-flight",
        "client:stop-execution",
        *(f"infra:{infra}" for infra in INFRA_KINDS),
    ):
        assert result["injections"].get(kind), (kind, output)
    # and the books hold
    assert (campaign.returncode, result["ok"]) == (0, True), output


def broken_compensation_plan(orders: int) -> CampaignPlan:
    """Good orders whose ConfirmOrder always fails, with a ReleaseStock that does nothing."""
    plan = CampaignPlan(seed=0, orders=orders, clients=2)
    for index in range(orders):
        plan.lines.append(
            OrderPlan(
                index=index,
                client=index % 2,
                items={"chaos-book": 1, "chaos-pen": 2},
                token="tok_visa",
                trouble=None,
                duplicate_create=False,
                cancel=None,
                cancel_delay=0,
                stop_execution=False,
                stop_delay=0,
            )
        )
    plan.faults.append(FaultEvent(0, {"function": "ReleaseStock", "kind": "skip"}))
    plan.faults.append(
        FaultEvent(0, {"function": "ConfirmOrder", "kind": "error", "error_type": "InjectedFailure"})
    )
    return plan


@pytest.mark.timeout(600)
def test_a_compensation_that_does_nothing_fails_the_campaign(chaos_stack: ChaosStack) -> None:
    # Given orders that each reserve stock, fail to confirm, and are compensated by a ReleaseStock
    # that answers success without releasing anything
    plan = broken_compensation_plan(orders=6)
    # When the campaign runs them
    result = Campaign(plan, chaos_stack).run(settle_timeout=300)
    # Then it fails, naming every order that kept its units, and the fault plan is as it was
    report = "\n".join(result.render())
    assert not result.ok, report
    assert result.outcomes == {"FAILED": 6}, report
    [stock] = [r for r in result.audit.results if r.name == "stock per order"]
    assert {o.subject for o in stock.offences} == set(result.order_ids)
    assert all("holds {'chaos-book': 1, 'chaos-pen': 2}" in o.detail for o in stock.offences)
    assert not chaos_stack.faults_file.exists() or "ReleaseStock" not in chaos_stack.faults_file.read_text()
