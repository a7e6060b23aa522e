"""The local AWS Parameters and Secrets Lambda Extension: the HTTP interface the functions read
their secrets through in AWS, served to the local Lambda workers.

In AWS the extension is a layer running beside each execution environment; locally one server per
stack, a thread of the moto server process, answers every worker (PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
in their environment) from moto's Secrets Manager, in process. The interface is the extension's:

    GET /secretsmanager/get?secretId=<id or ARN>[&refreshNow=true]
    X-Aws-Parameters-Secrets-Token: <the worker's AWS_SESSION_TOKEN>

200 with GetSecretValue's answer as JSON (ARN, Name, VersionId, SecretString, VersionStages,
CreatedDate); 401 without the right token; Secrets Manager's refusal (no such secret, ...) with its
status and error code; 400 without a secretId. A value is kept `ttl_seconds` (the extension's
SECRETS_MANAGER_TTL, 300 s by default); `refreshNow=true` reads Secrets Manager again and keeps the
new value. One cache serves every local worker, where in AWS each execution environment has its own.
"""

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header's name
PATH = "/secretsmanager/get"
ANSWERED_FIELDS = ("ARN", "Name", "VersionId", "SecretString", "VersionStages")

# What a GetSecretValue call answers for a secret id (boto3's parsed response), or raises.
GetSecretValue = Callable[[str], Mapping[str, Any]]


def answer_of(response: Mapping[str, Any]) -> dict[str, Any]:
    """GetSecretValue's response as the extension answers it (JSON)."""
    answer = {key: response[key] for key in ANSWERED_FIELDS if key in response}
    if "SecretBinary" in response:
        answer["SecretBinary"] = base64.b64encode(response["SecretBinary"]).decode()
    created = response.get("CreatedDate")
    if isinstance(created, datetime):
        answer["CreatedDate"] = created.isoformat()
    return answer


def refusal(status: int, message: str, error_type: str = "") -> tuple[int, bytes]:
    """(status, JSON body) of a request not answered with a secret."""
    body = {"message": message} | ({"__type": error_type} if error_type else {})
    return status, json.dumps(body).encode()


class SecretsExtension:
    """The server (a daemon thread once started) and its cache of answers."""

    def __init__(
        self,
        get_secret_value: GetSecretValue,
        *,
        token: str,
        port: int,
        ttl_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._get_secret_value = get_secret_value
        self._token = token
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, bytes]] = {}  # secret id -> (expiry, answer)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="secrets-extension", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, secret_id: str, *, refresh: bool) -> tuple[int, bytes]:
        """(status, body) for a request the token allowed."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(secret_id)
        if cached is not None and cached[0] > now and not refresh:
            return HTTPStatus.OK, cached[1]
        try:
            response = self._get_secret_value(secret_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", HTTPStatus.BAD_REQUEST)
            )
            return refusal(status, error.get("Message", str(exc)), error.get("Code", "Unknown"))
        body = json.dumps(answer_of(response)).encode()
        if self._ttl > 0:
            with self._lock:
                self._cache[secret_id] = (now + self._ttl, body)
        return HTTPStatus.OK, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        extension = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path != PATH:
                    self._send(*refusal(HTTPStatus.NOT_FOUND, f"only GET {PATH} is served"))
                elif self.headers.get(TOKEN_HEADER) != extension._token:
                    self._send(*refusal(HTTPStatus.UNAUTHORIZED, f"missing or wrong {TOKEN_HEADER}"))
                elif not query.get("secretId"):
                    self._send(*refusal(HTTPStatus.BAD_REQUEST, "secretId is required"))
                else:
                    refresh = query.get("refreshNow", ["false"])[0].lower() in {"true", "1"}
                    self._send(*extension.answer(query["secretId"][0], refresh=refresh))

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a read per cold start would flood the moto server's output."""

        return Handler
