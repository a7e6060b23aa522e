"""A minimal Step Functions endpoint: StartExecution answered at once, or throttled.

It speaks the AWS JSON 1.0 protocol botocore uses (`POST /`, `X-Amz-Target:
AWSStepFunctions.StartExecution`), so a real boto3 client signs and sends its requests to it
unchanged. The benchmarks use it to measure the edge's own cost per order, without moto's; the
tests use its throttling mode to show what the edge does when Step Functions says
ThrottlingException. Every other operation is answered 400 UnknownOperationException.

    python -m devstack.stepfunctions_endpoint   # prints the URL it listens on (a free port)

Stopped with SIGTERM, the process prints `started <n>`: how many executions it started.
"""

import argparse
import json
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from order_saga.workflow import execution_arn_for

TARGET = "AWSStepFunctions.StartExecution"


class StepFunctionsEndpoint:
    """The server, its counters, and the switch between answering and throttling."""

    def __init__(self, *, throttle: bool = False) -> None:
        self.throttle = throttle
        self.started: list[str] = []  # execution names, in the order they were started
        self.throttled = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> "StepFunctionsEndpoint":
        """Serve in a background thread of this process."""
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until the process is stopped."""
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if target != TARGET:
            return 400, {"__type": "UnknownOperationException", "message": f"not served here: {target}"}
        with self._lock:
            if self.throttle:
                self.throttled += 1
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            self.started.append(body["name"])
        arn = execution_arn_for(body["stateMachineArn"], body["name"])
        return 200, {"executionArn": arn, "startDate": datetime.now(UTC).timestamp()}


def _handler_for(endpoint: StepFunctionsEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
        disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            status, answer = endpoint.answer(self.headers.get("X-Amz-Target", ""), body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: one line per request would measure the terminal."""

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throttle", action="store_true", help="answer every call ThrottlingException")
    args = parser.parse_args()
    endpoint = StepFunctionsEndpoint(throttle=args.throttle)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    print(endpoint.url, flush=True)
    try:
        endpoint.serve_forever()
    finally:
        print(f"started {len(endpoint.started)}", flush=True)


if __name__ == "__main__":
    main()
