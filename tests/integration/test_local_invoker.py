"""The local Lambda invoker: real worker processes running a real handler module."""

import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack import faults, releases
from devstack.invoker import Invocation, LocalInvoker
from devstack.lambda_reports import Report, peak_memory_mb, reports_since
from devstack.paths import REPO_ROOT
from order_saga.functions import function
from tests.support.waiting import Deadline

FIXTURE = Path(__file__).parent / "lambda_fixture"
# The budget of a test's waits, below the integration tier's limit.
BUDGET_SECONDS = 120


@pytest.fixture
def invoker(tmp_path: Path) -> Iterator[LocalInvoker]:
    local = LocalInvoker(
        code_dirs={"ProcessPayment": FIXTURE, "ReserveStock": tmp_path / "missing"},
        base_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
        faults_file=tmp_path / "faults.json",
        function_limit=8,  # above what any test here runs at once; limits have their own test
        total_limit=16,
        log_dir=tmp_path / "lambda",
    )
    yield local
    local.shutdown()


def call(invoker: LocalInvoker, handler: str, event: Any, timeout: float = 5) -> tuple[Any, bool]:
    invocation = Invocation("ProcessPayment", f"handler.{handler}", timeout, {"FIXTURE_SETTING": "own"})
    payload, errored, _ = invoker.invoke(invocation, event)
    return json.loads(payload), errored


def add_fault(invoker: LocalInvoker, **fields: Any) -> None:
    faults.add_fault(faults.make_fault(function="ProcessPayment", **fields), invoker.faults_file)


def test_the_handler_runs_with_its_own_environment_and_a_context(
    invoker: LocalInvoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_ONLY_SETTING", "not for functions")
    answer, errored = call(invoker, "echo", {"order_id": "o-1"})
    assert not errored
    assert answer["event"] == {"order_id": "o-1"}
    assert answer["setting"] == "own"
    assert answer["server_only"] is None  # the server's own environment does not leak in
    assert answer["endpoint"] == "http://127.0.0.1:1"
    assert Path(answer["cwd"]) == FIXTURE  # like /var/task
    assert answer["function_name"] == "ProcessPayment"
    assert 0 < answer["remaining_ms"] <= 5000
    assert len(answer["request_id"]) == 36


def test_a_warm_worker_is_reused_and_concurrent_calls_get_their_own(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    first, _ = call(invoker, "echo", {})
    second, _ = call(invoker, "echo", {})
    assert first["pid"] == second["pid"]
    # Two calls that each wait for the other to have started: they meet only if they run side by side
    markers = [tmp_path / "a", tmp_path / "b"]
    events = [{"mine": str(m), "theirs": str(o), "seconds": 60} for m, o in (markers, markers[::-1])]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda event: call(invoker, "rendezvous", event, timeout=120)[0], events))
    assert [answer["met"] for answer in answers] == [True, True], "a call waited 60 s for the other's marker"
    assert answers[0]["pid"] != answers[1]["pid"]  # each on a worker of its own


def test_a_cold_start_does_not_count_against_the_invocations_timeout(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    # Given a function invoked with a timeout of 1 s, whose import the test holds
    started, release = tmp_path / "init-started", tmp_path / "init-release"
    environment = {"INIT_STARTED": str(started), "INIT_RELEASE": str(release), "INIT_HOLD_SECONDS": "60"}
    invocation = Invocation("ProcessPayment", "slow_init.handler", 1, environment)
    deadline = Deadline(BUDGET_SECONDS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # When its first (cold) invocation runs, and the import is released only after more than
        # the timeout since it started
        answer = pool.submit(invoker.invoke, invocation, {})
        deadline.wait_for(started.exists, "the function's import to start", every=0.01)
        held_since = time.monotonic()
        deadline.wait_for(lambda: time.monotonic() - held_since > 1, "1 s of the import to pass", every=0.01)
        release.touch()
        payload, errored, _ = answer.result(timeout=deadline.left("the cold invocation's answer"))
    # Then it answers: init has a limit of its own, as in Lambda
    assert (errored, 0 < json.loads(payload)["remaining_ms"] <= 1000) == (False, True), payload


def reports(invoker: LocalInvoker) -> list[Report]:
    return reports_since(invoker.log_dir, {}).get("ProcessPayment", [])


def test_each_invocation_leaves_lambdas_report_line_in_its_steps_log(invoker: LocalInvoker) -> None:
    first, _ = call(invoker, "echo", {})
    second, _ = call(invoker, "echo", {})
    cold, warm = reports(invoker)
    assert [cold.request_id, warm.request_id] == [first["request_id"], second["request_id"]]
    assert (cold.init_duration_ms or 0) > 0  # the worker's cold start
    assert warm.init_duration_ms is None  # the same worker, warm
    assert min(cold.duration_ms, warm.duration_ms) > 0
    assert (warm.memory_size_mb, warm.status) == (128, "")
    # The worker's own peak memory, not the invoker's process it was forked from
    assert warm.max_memory_used_mb == peak_memory_mb(second["pid"]) > 0


def test_a_timed_out_invocation_is_reported_with_its_status(invoker: LocalInvoker, tmp_path: Path) -> None:
    event = {"started": str(tmp_path / "started"), "release": str(tmp_path / "never")}
    call(invoker, "hold", event, timeout=1)
    [report] = reports(invoker)
    assert (report.status, report.duration_ms) == ("timeout", 1000.0)


def test_a_burst_beyond_the_bound_queues_for_the_bounded_workers(tmp_path: Path) -> None:
    # Given: at most 2 concurrent invocations of the function, and time to wait for a slot
    invoker = LocalInvoker(
        code_dirs={"ProcessPayment": FIXTURE}, faults_file=tmp_path / "faults.json",
        function_limit=2, total_limit=16, admission_wait_seconds=BUDGET_SECONDS,
        log_dir=tmp_path / "lambda",
    )  # fmt: skip
    release = tmp_path / "release"
    started = [tmp_path / f"started-{number}" for number in range(6)]
    events = [{"started": str(marker), "release": str(release)} for marker in started]
    try:
        with ThreadPoolExecutor(max_workers=len(events)) as pool:
            # When: 6 invocations arrive at once and the first ones hold their workers
            answers = pool.map(lambda event: call(invoker, "hold", event, timeout=BUDGET_SECONDS), events)
            Deadline(BUDGET_SECONDS).wait_for(
                lambda: sum(marker.exists() for marker in started) == 2, "two held invocations to start"
            )
            release.touch()
            results = list(answers)
        # Then: every one ran, on the 2 workers the bound allows, none throttled
        assert [errored for _, errored in results] == [False] * 6
        assert len({answer["pid"] for answer, _ in results}) == 2
    finally:
        release.touch()
        invoker.shutdown()


def test_an_exception_comes_back_in_lambdas_error_format(invoker: LocalInvoker) -> None:
    answer, errored = call(invoker, "decline", {"order_id": "o-1"})
    assert errored
    assert answer["errorType"] == "PaymentDeclined"
    assert answer["errorMessage"] == "card declined for o-1"
    assert len(answer["requestId"]) == 36
    assert 'handler.py", line' in answer["stackTrace"][0]
    assert "raise PaymentDeclined" in answer["stackTrace"][-1]


def test_a_handler_that_runs_too_long_times_out_and_its_worker_is_discarded(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    # Given a warm worker of a handler that holds until its `release` file appears
    released = tmp_path / "released"
    released.touch()
    started = str(tmp_path / "started")
    before, _ = call(invoker, "hold", {"started": started, "release": str(released)}, timeout=1)
    # When a call of it is held past its 1 s timeout (nothing releases it)
    answer, errored = call(
        invoker, "hold", {"started": started, "release": str(tmp_path / "never")}, timeout=1
    )
    # Then the call timed out, and the sandbox was killed, not left running
    assert errored
    assert answer["errorType"] == "Sandbox.Timedout"
    assert answer["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert not Path(f"/proc/{before['pid']}").exists()
    after, _ = call(invoker, "hold", {"started": started, "release": str(released)}, timeout=1)
    assert after["pid"] != before["pid"]  # a fresh (cold) worker


def test_runtime_failures_are_reported_like_lambda(invoker: LocalInvoker) -> None:
    answer, errored = call(invoker, "unmarshalable", {})
    assert (errored, answer["errorType"]) == (True, "Runtime.MarshalError")
    answer, errored = call(invoker, "nope", {})
    assert (errored, answer["errorType"]) == (True, "Runtime.HandlerNotFound")
    answer, errored = call(invoker, "crash", {})
    assert (errored, answer["errorType"]) == (True, "Runtime.ExitError")
    assert "exit status 3" in answer["errorMessage"]
    missing = Invocation("ReserveStock", "handler.echo", 5, {})
    payload, errored, _ = invoker.invoke(missing, {})
    assert (errored, json.loads(payload)["errorType"]) == (True, "Runtime.ImportModuleError")
    unknown = Invocation("Unknown", "handler.echo", 5, {})
    assert invoker.invoke(unknown, {})[1] is True


RELEASED_HANDLER = """
import os

from order_saga import workflow


def which(event, context):
    return {
        "mark": workflow.RELEASE_MARK,
        "layer": workflow.__file__,
        "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
    }
"""


def test_a_published_version_runs_the_code_it_was_published_with(
    invoker: LocalInvoker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two releases of ProcessPayment from a source tree whose shared layer differs between them
    monkeypatch.setattr(releases, "RELEASES_DIR", tmp_path / "releases")
    source = tmp_path / "source"
    (source / "functions" / "payment").mkdir(parents=True)
    (source / "functions" / "payment" / "handler.py").write_text(RELEASED_HANDLER)
    shutil.copytree(REPO_ROOT / releases.LAYER_DIR, source / releases.LAYER_DIR)
    workflow = source / releases.LAYER_DIR / "order_saga" / "workflow.py"
    original = workflow.read_text()
    published = {}
    for version, mark in (("1", "one"), ("2", "two")):
        workflow.write_text(f"{original}\nRELEASE_MARK = {mark!r}\n")
        code = releases.package(function("ProcessPayment"), source)
        releases.unpack(code)
        published[version] = code.sha256
    workflow.write_text(original)  # the source moved on: the versions keep what they were published with

    # When each version is invoked, then it runs its own function folder and its own layer
    for version, mark in (("1", "one"), ("2", "two")):
        invocation = Invocation(
            "ProcessPayment", "handler.which", 10, {}, version=version, code_sha256=published[version]
        )
        payload, errored, _ = invoker.invoke(invocation, {})
        answer = json.loads(payload)
        assert not errored, answer
        assert (answer["mark"], answer["version"]) == (mark, version)
        assert Path(answer["layer"]).is_relative_to(releases.code_folder(published[version]))
    # and $LATEST still runs the checkout's folder
    assert call(invoker, "echo", {})[0]["cwd"] == str(FIXTURE)
    # A version whose code is not on disk cannot be imported, as Lambda reports it
    gone = Invocation("ProcessPayment", "handler.which", 10, {}, version="3", code_sha256="AAAA")
    payload, errored, _ = invoker.invoke(gone, {})
    assert (errored, json.loads(payload)["errorType"]) == (True, "Runtime.ImportModuleError")


def test_a_bad_module_is_an_import_error(invoker: LocalInvoker) -> None:
    invocation = Invocation("ProcessPayment", "no_such_module.handler", 5, {})
    payload, errored, _ = invoker.invoke(invocation, {})
    answer = json.loads(payload)
    assert errored
    assert answer["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in answer["errorMessage"]


def test_an_error_fault_fails_the_call_without_running_the_handler(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    add_fault(invoker, kind="error", error_type="PaymentGatewayUnavailable", times=1)
    answer, errored = call(invoker, "record", {"marker": str(marker)})
    assert errored
    assert (answer["errorType"], answer["errorMessage"]) == (
        "PaymentGatewayUnavailable",
        "injected by the local fault plan",
    )
    assert not marker.exists()
    answer, errored = call(invoker, "record", {"marker": str(marker)})
    assert (errored, answer) == (False, {"calls": 1})


def test_a_delay_fault_starts_the_handler_late_within_its_timeout(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    add_fault(invoker, kind="delay", delay_seconds=1, times=2)
    slept: list[float] = []
    invoker.sleep = slept.append  # the invoker's waits, noted instead of waited
    answer, errored = call(invoker, "record", {"marker": str(marker)}, timeout=3)
    assert (errored, answer) == (False, {"calls": 1})
    # A delay beyond the timeout: the handler never starts
    answer, errored = call(invoker, "record", {"marker": str(marker)}, timeout=0.5)
    assert (errored, answer["errorType"]) == (True, "Sandbox.Timedout")
    assert marker.read_text().count("\n") == 1
    # The first call waited its delay before the handler; the second, its whole timeout
    assert slept == [1, 0.5]


def test_a_timeout_fault_does_the_work_but_loses_the_answer(invoker: LocalInvoker, tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    add_fault(invoker, kind="timeout", times=1)
    slept: list[float] = []
    invoker.sleep = slept.append  # the invoker's waits, noted instead of waited
    answer, errored = call(invoker, "record", {"marker": str(marker)}, timeout=1)
    assert (errored, answer["errorType"]) == (True, "Sandbox.Timedout")
    assert marker.read_text().count("\n") == 1  # the side effect happened
    [rest] = slept  # then it waited out what the handler left of the timeout
    assert 0 <= rest <= 1


def test_a_duplicate_fault_runs_the_handler_twice(invoker: LocalInvoker, tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    add_fault(invoker, kind="duplicate", times=1)
    answer, errored = call(invoker, "record", {"marker": str(marker)})
    assert (errored, answer) == (False, {"calls": 2})
    ids = marker.read_text().split()
    assert len(set(ids)) == 2  # two invocations, two request ids


def test_invocations_over_a_concurrency_limit_are_throttled_as_lambda_throttles(tmp_path: Path) -> None:
    # Given: one concurrent invocation per function, two in total, no wait for a slot
    names = ("ProcessPayment", "ReserveStock", "ConfirmOrder")
    invoker = LocalInvoker(
        code_dirs=dict.fromkeys(names, FIXTURE), faults_file=tmp_path / "faults.json",
        function_limit=1, total_limit=2, admission_wait_seconds=0,
    )  # fmt: skip
    release = tmp_path / "release"
    deadline = Deadline(BUDGET_SECONDS)

    def invocation(name: str, handler: str) -> Invocation:
        return Invocation(name, f"handler.{handler}", 30, {})

    def hold(name: str) -> threading.Thread:
        started = tmp_path / f"{name}.started"
        event = {"started": str(started), "release": str(release)}
        thread = threading.Thread(target=invoker.invoke, args=(invocation(name, "hold"), event))
        thread.start()
        deadline.wait_for(started.exists, f"the held {name} to start", every=0.01)
        return thread

    def error_of(name: str) -> tuple[str, str]:
        payload, errored, _ = invoker.invoke(invocation(name, "echo"), {})
        assert errored
        answer = json.loads(payload)
        return answer["errorType"], answer["errorMessage"]

    try:
        # When: ProcessPayment is busy, then a second ProcessPayment is throttled at once ...
        held = [hold("ProcessPayment")]
        assert error_of("ProcessPayment") == (
            "Lambda.TooManyRequestsException",
            "Rate Exceeded. ReservedFunctionConcurrentInvocationLimitExceeded (1)",
        )
        # ... and with two functions busy, any third is throttled by the total
        held.append(hold("ReserveStock"))
        assert error_of("ConfirmOrder") == (
            "Lambda.TooManyRequestsException",
            "Rate Exceeded. ConcurrentInvocationLimitExceeded (2 in total)",
        )
        # Then: a call that may wait for a slot gets the first one that frees up
        invoker.admission_wait_seconds = 60
        answers: list[tuple[str, bool, str]] = []
        waiting = threading.Thread(
            target=lambda: answers.append(invoker.invoke(invocation("ProcessPayment", "echo"), {}))
        )
        waiting.start()
        release.touch()
        for thread in [*held, waiting]:
            thread.join()
        [(payload, errored, _)] = answers
        assert not errored
        assert json.loads(payload)["function_name"] == "ProcessPayment"
    finally:
        release.touch()
        invoker.shutdown()


def test_a_skip_fault_answers_success_without_running_the_handler(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    add_fault(invoker, kind="skip", times=1)
    answer, errored = call(invoker, "record", {"marker": str(marker)})
    assert (errored, answer) == (False, {})


def test_a_hold_fault_keeps_the_call_waiting_until_it_is_cleared(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    # Given a held call; the invoker's first wait is where the test acts and releases it
    marker = tmp_path / "calls"
    add_fault(invoker, kind="hold")
    seen_while_held: list[bool] = []

    def release(_seconds: float) -> None:
        seen_while_held.append(marker.exists())
        faults.clear_faults(path=invoker.faults_file)

    invoker.sleep = release
    # When the call is made, then the handler ran only after the release, once
    answer, errored = call(invoker, "record", {"marker": str(marker)})
    assert (errored, answer, seen_while_held) == (False, {"calls": 1}, [False])


def test_a_released_call_meets_the_faults_added_while_it_was_held(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    # Given a held call, released by replacing its hold with an error aimed at its order
    marker = tmp_path / "calls"
    hold = faults.make_fault(function="ProcessPayment", kind="hold")
    faults.add_fault(hold, invoker.faults_file)

    def aim_and_release(_seconds: float) -> None:
        add_fault(invoker, kind="error", error_type="DatabaseUnavailable", times=1, order_id="o-1")
        assert faults.remove_fault(hold, invoker.faults_file)

    invoker.sleep = aim_and_release
    # When the call is made, then the error hits it, its handler never ran, and the fault is used up
    answer, errored = call(invoker, "record", {"marker": str(marker), "order_id": "o-1"})
    assert (errored, answer["errorType"]) == (True, "DatabaseUnavailable")
    assert not marker.exists()
    assert faults.read_plan(invoker.faults_file).faults == []


def test_a_hold_never_cleared_times_out_without_running_the_handler(
    invoker: LocalInvoker, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    add_fault(invoker, kind="hold")
    answer, errored = call(invoker, "record", {"marker": str(marker)}, timeout=0.3)
    assert (errored, answer["errorType"]) == (True, "Sandbox.Timedout")
    assert not marker.exists()
