"""The chaos campaign on the local stack: a seeded run with every kind of fault, audited; and a
run with a compensation that does nothing, which the campaign must fail."""

import json

import pytest

from devstack.chaos import Campaign, ChaosStack
from devstack.chaos_plan import INFRA_KINDS, CampaignPlan, FaultEvent, OrderPlan, make_plan
from devstack.faults import FaultKind
from devstack.paths import STATE_DIR

SEED = 20261124
ORDERS = 150


@pytest.mark.timeout(1200)  # a campaign, not a unit: minutes on a loaded machine
def test_a_seeded_campaign_with_every_fault_kind_keeps_the_books(chaos_stack: ChaosStack) -> None:
    # Given the seeded plan of 150 orders by 6 clients
    plan = make_plan(SEED, ORDERS, clients=6)
    # When it runs through the stack
    result = Campaign(plan, chaos_stack).run(settle_timeout=300)
    report = "\n".join(result.render())
    saved = STATE_DIR / "chaos" / f"e2e-{SEED}-{ORDERS}.json"  # for whoever investigates a failure
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result.as_json(), indent=2, default=str))
    # Then at least one of each fault kind was injected: every Lambda fault kind, gateway trouble,
    # client action and infrastructure fault
    injected = {kind.split(":")[-1] for kind in result.injections if kind.startswith("lambda:")}
    assert {kind.value for kind in (FaultKind.ERROR, FaultKind.DELAY, FaultKind.DUPLICATE)} <= injected, (
        report
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
        assert result.injections.get(kind), (kind, report)
    # and the books hold
    assert result.ok, report


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
