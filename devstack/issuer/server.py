"""The issuer's HTTP server: the JWKS of its user pool, as Cognito serves it, and a health check."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .keys import KeyRing
from .tokens import LocalIssuer

# The local user pool's id: the last part of the issuer URL, as in Cognito's
# https://cognito-idp.<region>.amazonaws.com/<user pool id>.
USER_POOL_ID = "local_orderSaga"
JWKS_PATH = f"/{USER_POOL_ID}/.well-known/jwks.json"


class IssuerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, keys: KeyRing) -> None:
        super().__init__(("127.0.0.1", port), IssuerRequestHandler)
        self.keys = keys


class IssuerRequestHandler(BaseHTTPRequestHandler):
    server: IssuerServer
    protocol_version = "HTTP/1.1"
    server_version = "local-token-issuer"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path == JWKS_PATH:
            self.answer(200, self.server.keys.jwks())
        elif self.path == "/health":
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"error": f"no such path {self.path}"})

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a JWKS fetch every few minutes says nothing worth a log line


@contextmanager
def serving_issuer(keys: KeyRing) -> Iterator[LocalIssuer]:
    """An issuer whose JWKS a thread of this process serves, on a port of its own, for as long as
    the block runs (an edge of a test's or a benchmark's own)."""
    server = IssuerServer(0, keys)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield LocalIssuer(keys, f"http://127.0.0.1:{server.server_port}/{USER_POOL_ID}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
