"""The local AWS endpoint: moto in server mode, executing the real state machines.

Run as `python -m devstack.moto_server` by `order-saga aws up` (see devstack/aws.py). Before
serving it turns on moto's Step Functions execution (moto runs the ASL with its bundled
interpreter), points the interpreter's own AWS calls at this server (MOTO_PORT), and installs
the local Lambda invoker in place of moto's Docker runner, and its own SQS poller in place of
moto's one-shot event-source delivery (devstack/sqs_poller.py). Executions start through state
machine versions and aliases as in AWS (devstack/moto_aliases.py: moto cannot run them itself).

Some of moto's work per execution is not what AWS does and is ours to remove; this launcher
removes it, moto pinned and no moto file edited (each hook fails loudly if it moved;
tests/unit/test_moto_hooks.py checks them):
- the interpreter parsed and built the ASL definition again for every execution (ANTLR, then the
  evaluation components: tens of milliseconds of CPU). Each definition is built once and kept
  pickled; each execution unpickles its own copy, so no execution state is shared;
- it parsed every JSONPath again each time a state used it (jsonpath_ng builds a new parser each
  time): parsed paths are kept;
- it made a boto3 client per Lambda and SQS task and sent each task over HTTP to this very
  server: one client per region and service is kept, and it is answered in process by moto's
  backends (moto's own in-process mode), skipping the HTTP server;
- the server matched every request's host against every service's URL patterns: kept per host;
- the garbage collector rescanned the server's long-lived heap: the start-up heap is frozen and
  collections are rarer;
- SQS receives computed every queue attribute per message (devstack/sqs_poller.py).

The functions read their secrets through the Parameters and Secrets extension's HTTP interface, as
in AWS: this process serves it to the workers from moto's Secrets Manager, in process
(devstack/secrets_extension.py).

Optionally the Retry waits of the interpreter are scaled (DEVSTACK_RETRY_TIME_SCALE, 1 = real
time): a compensation that "retries long" waits minutes in AWS, which a test run cannot afford.
Only the sleep between attempts is scaled; task timeouts, Lambda timeouts and the order of
events stay real. On a stack started scaled, `.devstack/retry-time-scale` (while it exists) sets
the scale for the waits that begin after it is written: a test runs one outage at real time.
"""

import argparse
import functools
import gc
import importlib
import inspect
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .aws_settings import AwsStackSettings
from .invoker import SESSION_TOKEN, LocalInvoker, base_environment, default_concurrency, install
from .moto_aliases import serve_versions_and_aliases
from .paths import STATE_DIR
from .secrets_extension import SecretsExtension
from .sqs_poller import SqsPoller, retention_without_attributes, stop_moto_push

# While this file of the state folder exists, its number is the scale (a test makes one outage's
# waits real, at 1, on a stack started scaled, without restarting it).
SCALE_OVERRIDE = STATE_DIR / "retry-time-scale"


class ScaledClock:
    """`time` as the interpreter's retrier sees it: the same clock, shorter sleeps."""

    def __init__(self, scale: float, override: Path = SCALE_OVERRIDE) -> None:
        self.scale = scale
        self.override = override

    def current_scale(self) -> float:
        try:
            return float(self.override.read_text())
        except (OSError, ValueError):
            return self.scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.current_scale())

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def scale_retry_waits(scale: float) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: PLC0415

    module: ModuleType = retrier_decl
    if getattr(module, "time", None) is not time:
        raise RuntimeError(
            "moto's Step Functions retrier no longer sleeps through its module's `time`: the pinned "
            "moto changed; find where Retry waits before upgrading moto"
        )
    module.time = ScaledClock(scale)  # type: ignore[attr-defined]


def cache_parsed_definitions() -> None:
    """Parse and build each definition once; give each execution its own copy of the program.

    Building the evaluation components from the parse tree costs about as much CPU as the rest of
    an execution together (tens of milliseconds), so it is done once per definition and kept
    pickled: unpickling makes a new, independent object graph (no component, and so no
    execution state, is shared between executions) for a fraction of a millisecond. Only this
    process's own objects are pickled."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser  # noqa: PLC0415
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker  # noqa: PLC0415

    entrypoint = getattr(ExecutionWorker, "_get_evaluation_entrypoint", None)
    if entrypoint is None or "AmazonStateLanguageParser.parse(" not in inspect.getsource(entrypoint):
        raise RuntimeError(
            "moto's ExecutionWorker no longer parses its definition in _get_evaluation_entrypoint: the "
            "pinned moto changed; find where executions parse the ASL before upgrading moto"
        )

    @functools.lru_cache(maxsize=64)
    def built_program(definition: str) -> bytes:
        program, _tree = AmazonStateLanguageParser.parse(definition)
        return pickle.dumps(program)

    def evaluation_entrypoint(worker: Any) -> Any:
        definition = worker._evaluation_details.state_machine_details.definition
        return pickle.loads(built_program(definition))  # noqa: S301 - pickled by this process

    ExecutionWorker._get_evaluation_entrypoint = evaluation_entrypoint  # type: ignore[method-assign,assignment]


# The interpreter's modules that parse a JSONPath every time a state evaluates one, and the name
# they parse with: InputPath, Parameters' "key.$" values and ResultSelector; ResultPath.
JSONPATH_PARSERS = (
    ("moto.stepfunctions.parser.asl.utils.json_path", "jsonpath_ng.ext"),
    ("moto.stepfunctions.parser.asl.component.common.path.result_path", "jsonpath_ng"),
)


def cache_parsed_json_paths() -> None:
    """Parse each JSONPath once. jsonpath_ng builds a new parser (it reads its LALR tables) for
    every `parse`, milliseconds each, and the interpreter parses the same few paths of the
    definitions for every state of every execution. A parsed path is not changed by finding or
    updating with it, so executions share it."""
    for name, parser in JSONPATH_PARSERS:
        module = importlib.import_module(name)
        parse: Callable[[str], Any] = importlib.import_module(parser).parse
        if getattr(module, "parse", None) is not parse:
            raise RuntimeError(
                f"{name} no longer parses JSONPaths with {parser}.parse: the pinned moto changed; "
                "find where the interpreter parses JSONPaths before upgrading moto"
            )
        module.parse = functools.lru_cache(maxsize=1024)(parse)  # type: ignore[attr-defined]


# The interpreter's modules that make a boto3 client per task: Lambda tasks and SQS sendMessage.
CLIENT_MAKERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
)


def in_process_client(region: str, service: str) -> Any:
    """A boto3 client whose requests this process's moto backends answer directly.

    moto's own interpreter client sends every task over HTTP to this very server. This one is
    moto's in-process mode (the stubber `mock_aws` uses), on this client only: the request is
    built, then dispatched to the backend's handler instead of a socket. The request and the
    answer are the same; the HTTP server, its thread per connection and its service lookup are
    skipped. Unsigned: there is no one to verify a signature, and moto reads the region from the
    URL."""
    import boto3  # noqa: PLC0415
    from botocore import UNSIGNED  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    client = boto3.client(  # type: ignore[call-overload] # the service is a parameter here
        service,
        region_name=region,
        endpoint_url=f"https://{service}.{region}.amazonaws.com",
        config=Config(
            signature_version=UNSIGNED,
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},  # as moto's: the ASL retries
        ),
    )
    stubber = BotocoreStubber()
    stubber.enabled = True
    client.meta.events.register("before-send", stubber)
    return client


def reuse_task_clients() -> None:
    """One in-process client per region and service for the interpreter's tasks, instead of a new
    HTTP client per task."""
    from moto.stepfunctions.parser.asl.utils import boto_client  # noqa: PLC0415

    make_client = boto_client.boto_client_for
    client_for = functools.lru_cache(maxsize=16)(in_process_client)

    def boto_client_for(region: str, service: str, **_state_credentials: Any) -> Any:
        return client_for(region, service)  # moto's maker ignores the credentials too

    for name in CLIENT_MAKERS:
        module = importlib.import_module(name)
        if getattr(module, "boto_client_for", None) is not make_client:
            raise RuntimeError(
                f"{name} no longer makes its clients with boto_client_for: the pinned moto changed; "
                "find where the interpreter makes its task clients before upgrading moto"
            )
        module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def remember_backends_of_hosts() -> None:
    """moto's server finds the service of every request by matching its host against the URL
    patterns of every service (hundreds of regular expressions, under one lock); the answer for a
    host never changes, so it is kept."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: PLC0415

    find = DomainDispatcherApplication.get_backend_for_host
    if "self.backend_url_patterns" not in inspect.getsource(find):
        raise RuntimeError(
            "moto's DomainDispatcherApplication.get_backend_for_host no longer matches the URL "
            "patterns: the pinned moto changed; check how it finds a request's service before upgrading moto"
        )
    DomainDispatcherApplication.get_backend_for_host = functools.lru_cache(maxsize=256)(find)  # type: ignore[method-assign]


# Collect the youngest objects every 50,000 allocations instead of 700, and the older generations
# 20 times more rarely than that (Python's defaults: 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 20)


def fewer_garbage_collections() -> None:
    """Stop the cyclic garbage collector from rescanning this server's long-lived heap.

    The moto server's heap is mostly long-lived: the modules of moto, botocore and Flask, and
    moto's state (every execution's history stays in memory). Its garbage is mostly freed by
    reference counting. With Python's default thresholds the collector scanned that heap again
    and again: 1.3 s of wall time in a 120-order burst that took 4.1 s of its CPU. What was
    imported at start is moved out of the collector's sight (`gc.freeze`), and collections run
    more rarely; the price is that cyclic garbage lives a little longer."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def without_docker() -> None:
    """There is no Docker engine here: moto's lazily made Docker client is None, not an error.

    Only the Docker runner (replaced by the invoker) would use it; this lets /moto-api/data.json
    list moto's models (for instance the e-mails SES accepted) instead of failing on it.
    """
    from moto.utilities.docker_utilities import DockerModel  # noqa: PLC0415

    DockerModel.docker_client = property(lambda _model: None)  # type: ignore[assignment,method-assign]


def enable_execution() -> None:
    from moto.core.config import default_user_config  # noqa: PLC0415

    default_user_config["stepfunctions"] = {"execute_state_machine": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int)
    parser.add_argument("--retry-time-scale", type=float)
    args = parser.parse_args()
    overrides = {"moto_port": args.port, "retry_time_scale": args.retry_time_scale}
    settings = AwsStackSettings(**{key: value for key, value in overrides.items() if value is not None})
    # The interpreter calls Lambda and SQS at localhost:$MOTO_PORT: it must be this server.
    os.environ["MOTO_PORT"] = str(settings.moto_port)
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    enable_execution()
    serve_versions_and_aliases()
    cache_parsed_definitions()
    cache_parsed_json_paths()
    reuse_task_clients()
    remember_backends_of_hosts()
    without_docker()
    if settings.retry_time_scale != 1:
        scale_retry_waits(settings.retry_time_scale)
    secrets = SecretsExtension(
        lambda secret_id: in_process_client(settings.region, "secretsmanager").get_secret_value(
            SecretId=secret_id
        ),
        token=SESSION_TOKEN,
        port=settings.secrets_extension_port,
        ttl_seconds=settings.secrets_extension_ttl,
    )
    per_function, total = default_concurrency()
    invoker = LocalInvoker(
        base_env=base_environment(settings.endpoint_url, settings.region, secrets.port),
        function_limit=settings.lambda_function_concurrency or per_function,
        total_limit=settings.lambda_concurrency or total,
    )
    install(invoker)
    stop_moto_push()
    retention_without_attributes()
    fewer_garbage_collections()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=settings.moto_port, verbose=False)
    stop = threading.Event()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    secrets.start()
    from moto.core.models import DEFAULT_ACCOUNT_ID  # noqa: PLC0415

    poller = SqsPoller(DEFAULT_ACCOUNT_ID, settings.region, settings.retry_time_scale)
    poller.start()
    print(f"moto server on {settings.endpoint_url} (Step Functions execution on)", flush=True)
    stop.wait()
    poller.stop()
    secrets.stop()
    invoker.shutdown()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
