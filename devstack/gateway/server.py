"""The gateway's HTTP server: reads each request, hands it to the gateway, and delivers the
outcome (late, or not at all, when a test token or a fault says so)."""

import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from .api import Gateway, Outcome, Request
from .errors import Answer, ParameterInvalid, error_answer, internal_error_answer
from .faults import HOLD_SECONDS
from .ratelimit import TokenBucket
from .store import Store

STORE_FILE = "gateway.sqlite3"
KEY_FILE = "api-key"


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True  # a request asleep in a slow token does not hold up a stop
    request_queue_size = 128  # many clients connecting at once (a burst of saga steps) are all accepted

    def __init__(self, port: int, gateway: Gateway) -> None:
        super().__init__(("127.0.0.1", port), GatewayRequestHandler)
        self.gateway = gateway

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def server_close(self) -> None:
        super().server_close()
        self.gateway.store.close()


class GatewayRequestHandler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"  # keep-alive, as a client's connection pool expects
    server_version = "local-payment-gateway"
    sys_version = ""

    def do_GET(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def do_DELETE(self) -> None:
        self.serve()

    def serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send(error_answer(ParameterInvalid("Content-Length is not a number")))
            return
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            body=self.rfile.read(length),
            client=self.client_address[0],
            authorization=self.headers.get("Authorization"),
            idempotency_key=self.headers.get("Idempotency-Key"),
        )
        self.deliver(self.outcome(request))

    def outcome(self, request: Request) -> Outcome:
        try:
            return self.server.gateway.handle(request)
        except Exception:  # a bug answers 500 (nothing was stored) and is logged
            traceback.print_exc()
            return Outcome(internal_error_answer())

    def deliver(self, outcome: Outcome) -> None:
        time.sleep(outcome.delay_seconds)
        if outcome.hold is not None:
            outcome.hold.wait(HOLD_SECONDS)
        if outcome.drop:
            self.close_connection = True  # no byte of an answer: the client's connection just ends
            self.log_request("dropped")
            return
        self.send(outcome.answer)

    def send(self, answer: Answer) -> None:
        data = answer.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # noqa: ARG002 - http.server's signature
        """One line a request: method, path, status and idempotency key (never the API key)."""
        headers = getattr(self, "headers", None)
        key = (headers.get("Idempotency-Key") if headers is not None else None) or "-"
        print(f"{self.command or '-'} {self.path} {code} {key}", flush=True)


def create_server(port: int, data_dir: Path, per_second: float) -> GatewayServer:
    """The gateway on 127.0.0.1:`port` (0: any free port), its store and key file in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(Store(data_dir / STORE_FILE), TokenBucket(per_second), data_dir / KEY_FILE)
    return GatewayServer(port, gateway)
