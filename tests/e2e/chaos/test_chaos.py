"""The chaos campaign on the local stack: a seeded run with every kind of fault, audited; and a
run with a compensation that does nothing, which the campaign must fail."""

import json

import pytest

from devstack.chaos import Campaign, ChaosStack
from devstack.chaos_plan import INFRA_KINDS, CampaignPlan, FaultEvent, OrderPlan
from devstack.faults import FaultKind
from tests.support.processes import cli
from tests.support.stack import LocalStack

SEED = 20261124
ORDERS = 80
CLIENTS = 8


@pytest.mark.timeout(1500)  # a campaign, not a unit: minutes on a loaded machine
def test_a_seeded_campaign_with_every_fault_kind_keeps_the_books(stack: LocalStack) -> None:
    # Given the seeded plan of 80 orders by 8 clients, run as developers run it
    saved = stack.state_dir / "chaos" / f"e2e-{SEED}-{ORDERS}.json"  # for whoever investigates a failure
    campaign = cli(
        "chaos", "--orders", str(ORDERS), "--clients", str(CLIENTS), "--seed", str(SEED),
        "--report", str(saved), env=stack.env, timeout=1400,
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
    # and the books hold; the report says how much of the run was the wait to settle
    assert (campaign.returncode, result["ok"]) == (0, True), output
    assert 0 < result["settle_seconds"] <= result["duration_seconds"], output


def sabotaged_plan(orders: int, *faults: dict[str, str]) -> CampaignPlan:
    """Good orders of a book and two pens, with the given faults in place from the start."""
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
    plan.faults.extend(FaultEvent(0, fault) for fault in faults)
    return plan


@pytest.mark.timeout(600)
def test_a_notifier_that_does_nothing_fails_the_campaign(chaos_stack: ChaosStack) -> None:
    # Given good orders whose notices are handled by a SendNotification that answers success
    # without sending anything (a bad deployment: nothing in the saga can notice it)
    plan = sabotaged_plan(6, {"function": "SendNotification", "kind": "skip"})
    # When the campaign runs them
    result = Campaign(plan, chaos_stack).run(settle_timeout=300)
    # Then the auditor fails it, naming the orders left without their notice, and the fault plan is
    # as it was
    report = "\n".join(result.render())
    assert not result.ok, report
    assert result.outcomes == {"CONFIRMED": 6}, report
    [notices] = [r for r in result.audit.results if r.name == "notifications"]
    flagged = {o.subject for o in notices.offences}
    assert flagged <= set(result.order_ids), report
    # A client follows its order to CONFIRMED, and the notice is queued after that: only each
    # client's last order may still have its notice in flight when the campaign clears the faults
    # (before it settles), and that one notice then goes out.
    assert len(flagged) >= len(result.order_ids) - plan.clients, report
    assert (
        not chaos_stack.faults_file.exists() or "SendNotification" not in chaos_stack.faults_file.read_text()
    )


@pytest.mark.timeout(600)
def test_a_compensation_that_does_nothing_is_flagged_for_a_person(chaos_stack: ChaosStack) -> None:
    # Given orders that each reserve stock and fail to confirm, compensated by a ReleaseStock that
    # answers success without releasing anything
    plan = sabotaged_plan(
        6,
        {"function": "ReleaseStock", "kind": "skip"},
        {"function": "ConfirmOrder", "kind": "error", "error_type": "InjectedFailure"},
    )
    # When the campaign runs them
    result = Campaign(plan, chaos_stack).run(settle_timeout=300)
    # Then the saga itself refuses to call them FAILED while they hold units: each is
    # NEEDS_ATTENTION owing the release, and the auditor finds the books truthful
    report = "\n".join(result.render())
    assert result.outcomes == {"NEEDS_ATTENTION": 6}, report
    assert result.ok, report
    assert {owed.order_id for owed in result.audit.owed} == set(result.order_ids), report
    assert all(owed.units == {"chaos-book": 1, "chaos-pen": 2} for owed in result.audit.owed), report
