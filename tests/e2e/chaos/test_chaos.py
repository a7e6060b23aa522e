"""The chaos campaign on the local stack: a seeded run with every kind of fault, audited; and a
run with a compensation that does nothing, which the campaign must fail."""

import json

import pytest

from devstack import faults
from devstack.chaos import Campaign
from devstack.chaos_plan import AIMED, INFRA_KINDS, CampaignPlan, FaultEvent, OrderPlan
from devstack.chaos_stack import ChaosStack
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
    # Then at least one of each fault kind happened to a saga: each Lambda fault aimed at an order
    # was used up by it (the error retried in its execution), an operator stopped a RUNNING saga
    # (ABORTED, its order FAILED by the watchdog); and there was gateway trouble, each client action
    # and each infrastructure fault
    for kind in (
        *(f"lambda-aimed:{aimed}" for aimed in AIMED),
        "client:stop-execution",
        "gateway-unavailable",
        "gateway-slow",
        "gateway-answer-lost",
        "client:duplicate-create",
        "client:cancel-pending",
        "client:cancel-mid-flight",
        *(f"infra:{infra}" for infra in INFRA_KINDS),
    ):
        assert result["injections"].get(kind), (kind, output)
    assert "client:stop-execution-not-seen" not in result["injections"], output
    # and the books hold, with every order settled
    assert (campaign.returncode, result["ok"]) == (0, True), output
    assert set(result["outcomes"]) <= {"CONFIRMED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}, output


def sabotaged_plan(orders: int, *sabotage: dict[str, str]) -> CampaignPlan:
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
            )
        )
    plan.faults.extend(FaultEvent(0, fault) for fault in sabotage)
    return plan


@pytest.mark.timeout(600)
def test_a_notifier_that_does_nothing_fails_the_campaign(chaos_stack: ChaosStack) -> None:
    # Given good orders whose notices are handled by a SendNotification that answers success
    # without sending anything (a bad deployment: nothing in the saga can notice it), deployed
    # before the campaign: it is in the fault plan the campaign finds and puts back, so it handles
    # every notice, however long one waits in the queue
    faults.add_fault(faults.make_fault(function="SendNotification", kind="skip"), chaos_stack.faults_file)
    found = chaos_stack.faults_file.read_text()
    # When the campaign runs them
    result = Campaign(sabotaged_plan(6), chaos_stack).run(settle_timeout=300)
    # Then the auditor fails it, naming every order, each left without its notice; and the fault
    # plan is the one it found
    report = "\n".join(result.render())
    assert not result.ok, report
    assert result.outcomes == {"CONFIRMED": 6}, report
    [notices] = [r for r in result.audit.results if r.name == "notifications"]
    assert {o.subject for o in notices.offences} == set(result.order_ids), report
    assert chaos_stack.faults_file.read_text() == found


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
    # and the campaign took its faults out of the plan again
    assert faults.read_plan(chaos_stack.faults_file).faults == [], report
