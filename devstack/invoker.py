"""The local Lambda invoker: what moto calls instead of running a function in Docker.

moto's Lambda backend runs every invocation through the private method
`moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)`
(Step Functions' lambda:invoke, Invoke from a client and SQS event-source mappings all end
there). `install()` replaces it with `LocalInvoker.invoke`, which runs our handler the way Lambda
does and answers in Lambda's format. moto is pinned because the hook is private; a test fails
loudly if it moves.

Each invocation runs in a worker process (`devstack.lambda_runtime`), one per concurrent
invocation of a function, reused while warm, like Lambda's execution environments. Concurrency is
bounded as Lambda bounds it (reserved concurrency per function, the account's limit in total):
an invocation over either limit waits briefly for a slot (`admission_wait_seconds`, short beside
the Tasks' timeouts) and is then answered `Lambda.TooManyRequestsException`, which the state
machines retry with backoff, so a burst turns into queueing and retries instead of a process per
invocation thrashing the machine. The limits follow the cores (see
`default_concurrency`). A process, not a thread, because:
- the timeout must stop the code: a thread cannot be killed in Python, a process can (Lambda
  also discards the sandbox of a timed-out invocation);
- each function has its own environment variables and its own `handler` module (every service
  folder has a handler.py), which one process cannot hold apart.

What a function prints goes to its step's log, `.devstack/lambda/<step>.log`, with Lambda's REPORT
line after every invocation (its duration, the worker's peak memory, a cold start's init
duration: devstack/lambda_reports.py).
"""

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from order_saga import manifest
from order_saga.functions import FUNCTIONS
from order_saga.manifest import LOCAL_ENVIRONMENT

from . import faults, releases
from .lambda_reports import TIMEOUT, Report, peak_memory_mb
from .paths import REPO_ROOT, STATE_DIR

LOG_DIR = STATE_DIR / "lambda"
# Lambda gives a function's init (imports, clients) 10 s of its own, outside the invocation's
# timeout; a loaded machine may need longer to start Python and import the handler.
INIT_TIMEOUT_SECONDS = 60.0
LATEST = "$LATEST"  # the unpublished function: what an unqualified ARN or name invokes
HOLD_POLL_SECONDS = 0.05  # how often a held invocation looks whether its hold was cleared
logger = logging.getLogger(__name__)

Answer = tuple[str, bool, str]  # (payload, errored, logs): what moto's hook returns
# The folders a worker imports from: the function's own first (its working directory, /var/task),
# then the layer's (/opt/python) for a published version.
Code = tuple[Path, ...]


@dataclass(frozen=True)
class Invocation:
    """What the invoker needs from moto's function object."""

    function_name: str
    handler: str
    timeout_seconds: float
    environment: dict[str, str]
    memory_mb: int = 128
    arn: str = ""
    version: str = LATEST
    code_sha256: str = ""  # of the published version's package (devstack/releases.py)

    @property
    def step(self) -> str:
        """The function's step (`RefundPayment` for `OrderSaga-local-RefundPayment`): what the
        code folders, the fault plan and the log files are named by."""
        return manifest.local_name(LOCAL_ENVIRONMENT, self.function_name) or self.function_name

    @property
    def configuration(self) -> tuple[Any, ...]:
        """Workers are reused only for the same configuration (a changed environment gets new ones)."""
        return (
            self.function_name,
            self.version,
            self.code_sha256,
            self.handler,
            self.timeout_seconds,
            self.memory_mb,
            sorted(self.environment.items()).__repr__(),
        )


THROTTLED = "Lambda.TooManyRequestsException"


def default_concurrency(cores: int | None = None) -> tuple[int, int]:
    """(per function, in total) for this machine: a worker mostly waits on MySQL, so a few per
    core keep the cores busy; more only queue for them."""
    cores = cores or os.cpu_count() or 1
    return 2 * cores, 4 * cores


class Throttled(Exception):
    """An invocation over a concurrency limit; answered as Lambda does."""


def error_answer(error_type: str, message: str, request_id: str) -> str:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": []}
    )


def timed_out(request_id: str, timeout_seconds: float) -> Answer:
    message = f"RequestId: {request_id} Error: Task timed out after {timeout_seconds:.2f} seconds"
    return error_answer("Sandbox.Timedout", message, request_id), True, ""


class Worker:
    """One warm execution environment of one function configuration."""

    def __init__(
        self, code: Code, invocation: Invocation, base_env: dict[str, str], log_dir: Path = LOG_DIR
    ) -> None:
        env = (
            base_env
            | invocation.environment
            | {
                "AWS_LAMBDA_FUNCTION_NAME": invocation.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(invocation.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(invocation.timeout_seconds),
                "AWS_LAMBDA_FUNCTION_VERSION": invocation.version,
                "ORDER_SAGA_LOCAL_FUNCTION_ARN": invocation.arn,
                "_HANDLER": invocation.handler,
                "PYTHONUNBUFFERED": "1",
            }
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{invocation.step}.log"
        self.memory_mb = invocation.memory_mb
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own runtime module
                [sys.executable, "-m", "devstack.lambda_runtime", invocation.handler, *map(str, code)],
                cwd=code[0],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self._ready = False

    def _init_failure(self, request_id: str, timeout_seconds: float) -> Answer | None:
        """Wait for the end of the cold start (the runtime says it is ready); the answer if it failed."""
        if self._ready:
            return None
        _, stdout = self._pipes()
        ready, _, _ = select.select([stdout], [], [], INIT_TIMEOUT_SECONDS)
        if not ready:
            self.kill()
            return timed_out(request_id, timeout_seconds)
        if not stdout.readline():
            return self._exited(request_id)
        self._ready = True
        return None

    def call(self, event: Any, request_id: str, timeout_seconds: float) -> Answer:
        """The handler's answer, or Sandbox.Timedout (the worker is then killed, never reused).
        The timeout counts from the end of the worker's init, as Lambda's does."""
        failed = self._init_failure(request_id, timeout_seconds)
        if failed is not None:
            return failed
        stdin, stdout = self._pipes()
        request = {"request_id": request_id, "event": event, "timeout_ms": int(timeout_seconds * 1000)}
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            return self._exited(request_id)
        ready, _, _ = select.select([stdout], [], [], timeout_seconds)
        if not ready:
            self._report_timeout(request_id, timeout_seconds)
            self.kill()
            return timed_out(request_id, timeout_seconds)
        line = stdout.readline()
        if not line:
            return self._exited(request_id)
        answer = json.loads(line)
        return json.dumps(answer["payload"]), not answer["ok"], ""

    def _report_timeout(self, request_id: str, timeout_seconds: float) -> None:
        """Lambda's REPORT line for an invocation that timed out (the worker, which writes the
        others, is about to be killed)."""
        report = Report(
            request_id,
            timeout_seconds * 1000,
            self.memory_mb,
            peak_memory_mb(self.process.pid),
            status=TIMEOUT,
        )
        with self.log.open("a") as log:
            log.write(report.line())

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self.process.stdin is not None  # both are pipes, by construction
        assert self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    def _exited(self, request_id: str) -> Answer:
        code = self.process.wait()
        message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
        return error_answer("Runtime.ExitError", message, request_id), True, ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()


@dataclass
class LocalInvoker:
    """Runs invocations on warm workers, applying the fault plan first."""

    code_dirs: dict[str, Path] = field(
        default_factory=lambda: {spec.name: REPO_ROOT / spec.code_dir for spec in FUNCTIONS}
    )
    base_env: dict[str, str] = field(default_factory=dict)
    faults_file: Path = field(default_factory=lambda: faults.FAULTS_FILE)
    sleep: Callable[[float], None] = time.sleep
    function_limit: int = field(default_factory=lambda: default_concurrency()[0])
    total_limit: int = field(default_factory=lambda: default_concurrency()[1])
    admission_wait_seconds: float = 2.0
    log_dir: Path = LOG_DIR  # the functions' logs, one per step (what they print, REPORT lines)
    _idle: dict[tuple[Any, ...], list[Worker]] = field(default_factory=dict)
    _busy: dict[Worker, str] = field(default_factory=dict)  # worker -> its function's name
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def invoke(self, invocation: Invocation, event: Any) -> Answer:
        request_id = str(uuid.uuid4())
        code, missing = self._code_of(invocation)
        if missing:
            message = f"Unable to import module of {invocation.function_name!r}: {missing}"
            return error_answer("Runtime.ImportModuleError", message, request_id), True, ""
        return self._meet_the_plan(code, invocation, event, request_id, timeout=invocation.timeout_seconds)

    def _code_of(self, invocation: Invocation) -> tuple[Code, str]:
        """(the folders the invocation runs, why they cannot run if so). A published version runs
        the code it was published with; $LATEST runs the checkout's folder (and the layer the
        virtualenv installs from the checkout)."""
        if invocation.version != LATEST:
            code = releases.import_paths(invocation.code_sha256)
            absent = [folder for folder in code if not folder.is_dir()]
            return code, f"no code of version {invocation.version} in {absent[0]}" if absent else ""
        folder = self.code_dirs.get(invocation.step)
        if folder is None:
            return (), "not in order_saga.functions.FUNCTIONS"
        return (folder,), "" if folder.is_dir() else f"no code folder {folder}"

    def _meet_the_plan(
        self, code: Code, invocation: Invocation, event: Any, request_id: str, *, timeout: float
    ) -> Answer:
        """Run the call, with the fault that hits it if any, within `timeout` seconds."""
        fault = faults.take_fault(invocation.step, event, self.faults_file)
        if fault is None:
            return self._run(code, invocation, event, request_id, timeout)
        return self._run_with_fault(fault, code, invocation, event, request_id, timeout=timeout)

    def _run_with_fault(
        self,
        fault: faults.Fault,
        code: Code,
        invocation: Invocation,
        event: Any,
        request_id: str,
        *,
        timeout: float,
    ) -> Answer:
        match fault.kind:
            case faults.FaultKind.ERROR:
                assert fault.error_type is not None  # the model guarantees it
                return error_answer(fault.error_type, fault.message, request_id), True, ""
            case faults.FaultKind.DELAY:
                assert fault.delay_seconds is not None  # the model guarantees it
                return self._run_late(
                    fault.delay_seconds, code, invocation, event, request_id, timeout=timeout
                )
            case faults.FaultKind.TIMEOUT:
                started = time.monotonic()
                self._run(code, invocation, event, request_id, timeout)
                self.sleep(max(0.0, timeout - (time.monotonic() - started)))
                return timed_out(request_id, timeout)
            case faults.FaultKind.DUPLICATE:
                self._run(code, invocation, event, request_id, timeout)
                return self._run(code, invocation, event, str(uuid.uuid4()), timeout)
            case faults.FaultKind.SKIP:
                return "{}", False, ""
            case faults.FaultKind.HOLD:
                return self._run_when_released(fault, code, invocation, event, request_id, timeout=timeout)

    def _run_late(
        self,
        delay: float,
        code: Code,
        invocation: Invocation,
        event: Any,
        request_id: str,
        *,
        timeout: float,
    ) -> Answer:
        """Start the handler `delay` seconds late; the delay counts against the timeout."""
        if delay >= timeout:
            self.sleep(timeout)
            return timed_out(request_id, timeout)
        self.sleep(delay)
        return self._run(code, invocation, event, request_id, timeout - delay)

    def _run_when_released(
        self,
        hold: faults.Fault,
        code: Code,
        invocation: Invocation,
        event: Any,
        request_id: str,
        *,
        timeout: float,
    ) -> Answer:
        """Wait while the hold is in the plan (it counts against the timeout), then meet the plan as
        it is now: a fault added while the call waited hits it."""
        started = time.monotonic()
        while faults.still_planned(hold, self.faults_file):
            if time.monotonic() - started >= timeout:
                return timed_out(request_id, timeout)
            self.sleep(HOLD_POLL_SECONDS)
        left = timeout - (time.monotonic() - started)
        return self._meet_the_plan(code, invocation, event, request_id, timeout=left)

    def _run(self, code: Code, invocation: Invocation, event: Any, request_id: str, timeout: float) -> Answer:
        try:
            worker = self._checkout(code, invocation)
        except Throttled as exc:
            return error_answer(THROTTLED, f"Rate Exceeded. {exc}", request_id), True, ""
        try:
            return worker.call(event, request_id, timeout)
        finally:
            self._checkin(invocation, worker)

    def _checkout(self, code: Code, invocation: Invocation) -> Worker:
        name = invocation.function_name
        with self._lock:
            over = self._wait_for_slot(name)
            if over:
                raise Throttled(over)
            idle = self._idle.setdefault(invocation.configuration, [])
            while idle:
                worker = idle.pop()
                if worker.alive():
                    self._busy[worker] = name
                    return worker
            worker = Worker(code, invocation, self.base_env, self.log_dir)
            self._busy[worker] = name
            return worker

    def _wait_for_slot(self, name: str) -> str:
        """Wait (holding the lock's condition) until `name` may run; the limit still exceeded
        when the admission wait is over, or "" when a slot is free."""
        deadline = time.monotonic() + self.admission_wait_seconds
        while True:
            if len(self._busy) >= self.total_limit:
                over = f"ConcurrentInvocationLimitExceeded ({self.total_limit} in total)"
            elif sum(busy == name for busy in self._busy.values()) >= self.function_limit:
                over = f"ReservedFunctionConcurrentInvocationLimitExceeded ({self.function_limit})"
            else:
                return ""
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return over
            self._lock.wait(remaining)

    def _checkin(self, invocation: Invocation, worker: Worker) -> None:
        with self._lock:
            self._lock.notify_all()
            self._busy.pop(worker, None)
            if worker.alive():
                self._idle.setdefault(invocation.configuration, []).append(worker)

    def shutdown(self) -> None:
        """Stop every worker (the server is going away)."""
        with self._lock:
            workers = [w for pool in self._idle.values() for w in pool] + list(self._busy)
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.kill()


def invocation_of(function: Any) -> Invocation:
    """The invocation settings of one of moto's LambdaFunction objects."""
    return Invocation(
        function_name=function.function_name,
        handler=function.handler,
        timeout_seconds=float(function.timeout),
        environment=dict(function.environment_vars or {}),
        memory_mb=int(function.memory_size),
        arn=function.function_arn,
        version=str(function.version),
        code_sha256=str(function.code_sha_256),
    )


def decode_event(event: Any) -> Any:
    """moto passes the event as parsed JSON, a JSON string, or None."""
    if event is None:
        return {}
    if isinstance(event, (str, bytes)):
        try:
            return json.loads(event)
        except ValueError:
            return event
    return event


def install(invoker: LocalInvoker) -> None:
    """Route every moto Lambda invocation through `invoker` (fails loudly if moto's hook moved)."""
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415 - only the server imports moto

    if not callable(getattr(LambdaFunction, "_invoke_lambda", None)):
        raise RuntimeError(
            "moto.awslambda.models.LambdaFunction._invoke_lambda is gone: the pinned moto changed; "
            "find the new per-invocation hook before upgrading moto"
        )

    def _invoke_lambda(self: Any, event: Any = None) -> Answer:
        try:
            return invoker.invoke(invocation_of(self), decode_event(event))
        except Exception as exc:
            # A fault of the local runtime itself: answered as Lambda does, never an HTTP 500
            # (which the interpreter would turn into a baffling States.Runtime).
            logger.exception("local invoker failed for %s", self.function_name)
            return error_answer("Runtime.Unknown", f"local invoker failed: {exc!r}", ""), True, ""

    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


SESSION_TOKEN = "local"  # noqa: S105 - moto accepts any; the local secrets extension checks it


def base_environment(endpoint_url: str, region: str, secrets_extension_port: int) -> dict[str, str]:
    """What the Lambda service gives every function, pointed at the local AWS endpoint, and the
    port of the Parameters and Secrets extension the functions read their secrets through."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "DEVSTACK_DIR")
    return {key: os.environ[key] for key in keep if key in os.environ} | {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(secrets_extension_port),
    }
