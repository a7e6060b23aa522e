"""The private moto hooks the local stack relies on. If one of these fails, moto moved them:
find the new place before upgrading the pin in constraints.txt."""

import gc
import importlib
import inspect
import json
import re
import time
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from moto.awslambda.models import LambdaFunction
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import SQSBackend
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from devstack import invoker, sqs_poller
from devstack.moto_server import (
    CLIENT_MAKERS,
    GC_THRESHOLDS,
    JSONPATH_PARSERS,
    ScaledClock,
    cache_parsed_definitions,
    cache_parsed_json_paths,
    fewer_garbage_collections,
    in_process_client,
    remember_backends_of_hosts,
    reuse_task_clients,
    scale_retry_waits,
)

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"
real_build = Preprocessor.visitState_machine


def test_the_installed_moto_is_the_pinned_one() -> None:
    pinned = re.search(r"^moto==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    assert pinned is not None, "moto must be pinned in constraints.txt"
    assert version("moto") == pinned.group(1)


def test_lambda_invocations_go_through_the_invoke_lambda_hook() -> None:
    # The hook exists with the signature the invoker replaces ...
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]
    # ... and the Invoke API (used by Step Functions and by SQS event sources) calls it.
    assert "self._invoke_lambda(event=body)" in inspect.getsource(LambdaFunction.invoke)


def test_install_replaces_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", LambdaFunction._invoke_lambda)
    invoker.install(invoker.LocalInvoker(code_dirs={}))
    assert LambdaFunction._invoke_lambda.__module__ == "devstack.invoker"


def test_install_fails_loudly_when_the_hook_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(LambdaFunction, "_invoke_lambda")
    with pytest.raises(RuntimeError, match="_invoke_lambda is gone"):
        invoker.install(invoker.LocalInvoker(code_dirs={}))


def test_retry_waits_sleep_through_the_retrier_modules_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert retrier_decl.time is time  # type: ignore[attr-defined]
    assert "time.sleep(interval_seconds)" in inspect.getsource(retrier_decl.RetrierDecl._eval_body)
    monkeypatch.setattr(retrier_decl, "time", time)
    scale_retry_waits(0.5)
    assert isinstance(retrier_decl.time, ScaledClock)  # type: ignore[attr-defined]
    # Scaling twice would be a bug in the server's start-up: refused.
    with pytest.raises(RuntimeError, match="retrier"):
        scale_retry_waits(0.5)


def test_scaled_clock_shortens_sleeps_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(time, "monotonic", lambda: 1234.5)  # a clock reading of the test's choosing
    clock = ScaledClock(0.1, tmp_path / "retry-time-scale")
    clock.sleep(20)
    assert slept == [pytest.approx(2.0)]
    assert clock.monotonic() == 1234.5  # the time module's own reading, unscaled


def test_the_state_folders_scale_overrides_the_stacks_while_it_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    override = tmp_path / "retry-time-scale"
    clock = ScaledClock(0.05, override)
    override.write_text("1")
    clock.sleep(30)  # real time while the file says so
    override.unlink()
    clock.sleep(30)  # the stack's scale again
    assert slept == [pytest.approx(30.0), pytest.approx(1.5)]


def test_executions_parse_their_definition_in_the_entrypoint_hook() -> None:
    source = inspect.getsource(ExecutionWorker)
    assert "program = self._get_evaluation_entrypoint()" in source
    assert "AmazonStateLanguageParser.parse(" in inspect.getsource(ExecutionWorker._get_evaluation_entrypoint)


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_program(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        ExecutionWorker, "_get_evaluation_entrypoint", ExecutionWorker._get_evaluation_entrypoint
    )
    parses: list[str] = []
    real_parse = AmazonStateLanguageParser.parse

    def counting_parse(definition: str) -> Any:
        parses.append(definition)
        return real_parse(definition)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counting_parse))
    builds: list[Any] = []

    def counting_build(self: Preprocessor, tree: Any) -> Any:
        builds.append(tree)
        return real_build(self, tree)

    monkeypatch.setattr(Preprocessor, "visitState_machine", counting_build)
    cache_parsed_definitions()
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    worker = SimpleNamespace(
        _evaluation_details=SimpleNamespace(state_machine_details=SimpleNamespace(definition=definition))
    )
    first = ExecutionWorker._get_evaluation_entrypoint(worker)  # type: ignore[arg-type]
    second = ExecutionWorker._get_evaluation_entrypoint(worker)  # type: ignore[arg-type]
    assert parses == [definition]
    assert len(builds) == 1  # the components too are built once
    assert isinstance(first, Program)
    assert isinstance(second, Program)
    assert first is not second  # no evaluation component is shared between executions
    assert first.states is not second.states


def test_caching_definitions_fails_loudly_when_the_hook_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExecutionWorker, "_get_evaluation_entrypoint", lambda _worker: None)
    with pytest.raises(RuntimeError, match="_get_evaluation_entrypoint"):
        cache_parsed_definitions()


def test_task_clients_are_made_once_per_region_and_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLIENT_MAKERS:
        module = importlib.import_module(name)
        assert module.boto_client_for is boto_client.boto_client_for
        monkeypatch.setattr(module, "boto_client_for", boto_client.boto_client_for)
    reuse_task_clients()
    makers = [importlib.import_module(name).boto_client_for for name in CLIENT_MAKERS]
    first = makers[0](region="us-east-1", service="lambda", state_credentials=None)
    assert makers[1](region="us-east-1", service="lambda") is first
    assert makers[0](region="us-east-1", service="sqs") is not first
    # A second installation would wrap the wrapper: refused, as a moved hook is
    with pytest.raises(RuntimeError, match="boto_client_for"):
        reuse_task_clients()


def test_stopping_moto_push_fails_loudly_when_add_message_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.sqs.models import Queue  # noqa: PLC0415

    # moto delivers to event sources from add_message, which stop_moto_push relies on ...
    assert "self.lambda_event_source_mappings" in inspect.getsource(Queue.add_message)
    # ... and a moto that delivers elsewhere is refused, not silently doubled by the poller.
    monkeypatch.setattr(Queue, "add_message", lambda self, message: None)
    with pytest.raises(RuntimeError, match="no longer pushes"):
        sqs_poller.stop_moto_push()


def test_task_clients_are_answered_in_process_without_a_socket() -> None:
    # Unit tests block sockets: an answer proves the request never left the process.
    sqs = in_process_client("us-east-1", "sqs")
    url = sqs.create_queue(QueueName="in-process")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == "hello"
    assert in_process_client("us-east-1", "lambda").list_functions()["Functions"] == []


def test_json_paths_are_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, parser in JSONPATH_PARSERS:
        module = importlib.import_module(name)
        monkeypatch.setattr(module, "parse", importlib.import_module(parser).parse)
    cache_parsed_json_paths()
    for name, _ in JSONPATH_PARSERS:
        parse = importlib.import_module(name).parse
        assert parse("$.order.order_id") is parse("$.order.order_id")
    assert json_path.extract_json("$.order.order_id", {"order": {"order_id": "o-1"}}) == "o-1"
    # Installing twice would wrap the cache: refused, as a moved hook is
    with pytest.raises(RuntimeError, match="parses JSONPaths"):
        cache_parsed_json_paths()


def test_the_backend_of_a_host_is_found_once(monkeypatch: pytest.MonkeyPatch) -> None:
    find = DomainDispatcherApplication.get_backend_for_host
    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", find)
    remember_backends_of_hosts()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    host = "states.us-east-1.amazonaws.com"
    assert dispatcher.get_backend_for_host(host) == find(dispatcher, host) == "stepfunctions"
    dispatcher.get_backend_for_host(host)
    assert DomainDispatcherApplication.get_backend_for_host.cache_info().hits == 1  # type: ignore[attr-defined]


def test_the_retention_check_reads_the_queues_retention_period() -> None:
    sqs_poller.retention_without_attributes()
    backend = SimpleNamespace(get_queue=lambda _name: SimpleNamespace(message_retention_period=60))
    now_ms = time.time() * 1000
    check = SQSBackend.is_message_valid_based_on_retention_period
    assert check(backend, "q", SimpleNamespace(sent_timestamp=now_ms - 50_000))  # type: ignore[arg-type]
    assert not check(backend, "q", SimpleNamespace(sent_timestamp=now_ms - 61_000))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="retention"):  # moto's own check is no longer there
        sqs_poller.retention_without_attributes()


def test_the_collector_leaves_the_start_up_heap_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(gc, "set_threshold", lambda *thresholds: set_to.append(thresholds))
    frozen: list[bool] = []
    set_to: list[tuple[int, ...]] = []
    fewer_garbage_collections()
    assert (frozen, set_to) == ([True], [GC_THRESHOLDS])
