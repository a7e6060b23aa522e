"""One Lambda execution environment: a worker process that runs one function's handler.

The invoker starts it with the function's environment, `module.function` as the handler and the
folders to import from, first on `sys.path` in that order: the function's code folder (as
`/var/task` is in Lambda), then for a published version the layer's code of its release (as
`/opt/python`; devstack/releases.py); the worker imports the handler
once (the cold start) and then answers invocations one at a time, as a warm Lambda sandbox does.

Protocol: one JSON line `{"ready": true}` on the original stdout once the handler is imported
(the end of the init phase, which as in Lambda does not count against an invocation's timeout),
then one JSON line per invocation on stdin (`request_id`, `event`, `timeout_ms`) and one JSON
line per answer on that stdout (`ok` and `payload`). Everything the handler prints (and
the Powertools logger, which writes to stdout) goes to stderr, the function's log file, so it can
never corrupt the protocol. Errors come back in the Lambda runtime's format: errorMessage,
errorType, requestId, stackTrace. Before each answer the worker writes Lambda's REPORT line to the
function's log (devstack/lambda_reports.py): the handler's duration, the worker's peak memory,
and on the first invocation the init's duration (the handler module's import).
"""

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from devstack.lambda_reports import Report, peak_memory_mb


class LambdaContext:
    """The context object the Python runtime passes to a handler (the fields handlers use)."""

    def __init__(self, request_id: str, timeout_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("ORDER_SAGA_LOCAL_FUNCTION_ARN", "")
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error_payload(
    error_type: str, message: str, request_id: str, tb: TracebackType | None = None
) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(tb)) if tb else [],
    }


def load_handler(spec: str) -> tuple[Callable[[Any, LambdaContext], Any] | None, dict[str, Any] | None]:
    """The handler function, or the init error Lambda would report for it."""
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the function's init error
        return None, error_payload(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
            "",
            exc.__traceback__,
        )
    handler = getattr(module, function_name, None)
    if not callable(handler):
        return None, error_payload(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'", ""
        )
    return handler, None


def invoke(handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any]) -> tuple[bool, Any]:
    request_id = request["request_id"]
    try:
        result = handler(request["event"], LambdaContext(request_id, request["timeout_ms"]))
    except Exception as exc:  # Lambda reports every exception the same way
        # The trace starts in the function's code, as Lambda's does (not in this runtime loop).
        trace = exc.__traceback__.tb_next if exc.__traceback__ else None
        return False, error_payload(type(exc).__name__, str(exc), request_id, trace)
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return False, error_payload("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id)
    return True, result


def serve(handler_spec: str, requests: TextIO, answers: TextIO, log: TextIO) -> None:
    began = time.perf_counter()
    handler, init_error = load_handler(handler_spec)
    init_ms: float | None = (time.perf_counter() - began) * 1000
    memory_size_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        began = time.perf_counter()
        if handler is None:
            ok, payload = False, dict(init_error or {}, requestId=request["request_id"])
        else:
            ok, payload = invoke(handler, request)
        duration_ms = (time.perf_counter() - began) * 1000
        # The report is in the log before the answer leaves: whoever has the answer finds it.
        report = Report(request["request_id"], duration_ms, memory_size_mb, peak_memory_mb(), init_ms)
        log.write(report.line())
        log.flush()
        answers.write(json.dumps({"ok": ok, "payload": payload}) + "\n")
        answers.flush()
        init_ms = None  # only the first invocation of a worker is a cold start


def main() -> None:
    handler_spec, folders = sys.argv[1], sys.argv[2:]
    sys.path[0:0] = folders
    # Keep the real stdout for answers; whatever the function prints goes to its log (stderr).
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(handler_spec, sys.stdin, answers, sys.stderr)


if __name__ == "__main__":
    main()
