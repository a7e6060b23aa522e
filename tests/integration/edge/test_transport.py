"""TLS and mTLS by configuration, and the process: health check, reconciler, SIGTERM drain and exit."""

import datetime
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from moto.server import ThreadedMotoServer

from devstack.issuer.tokens import LocalIssuer
from grpc_edge.channel import open_channel
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.healthcheck import probe
from grpc_edge.settings import EdgeSettings
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.edge import (
    DEFINITION,
    ROLE,
    EdgeFactory,
    StateMachines,
    insert_orphan,
    make_edge_settings,
    make_token,
    status_of,
)
from tests.support.processes import free_port
from tests.support.waiting import Deadline

# The budget of each process test's waits, below the integration tier's limit.
BUDGET_SECONDS = 240


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _issue(
    folder: Path, name: str, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey | None, *, ca: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if ca else issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        # The server's certificate may also act as a client's: the container health check uses it.
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if name == "localhost":
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    certificate = builder.sign(issuer_key or key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA issuing the server's certificate (localhost) and a client's."""
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue(folder, "test-ca", x509.Name([]), None, ca=True)
    _issue(folder, "localhost", ca_cert.subject, ca_key, ca=False)
    _issue(folder, "client", ca_cert.subject, ca_key, ca=False)
    return Pki(
        folder / "test-ca.pem",
        folder / "localhost.pem",
        folder / "localhost.key",
        folder / "client.pem",
        folder / "client.key",
    )


def health_call(channel: grpc.Channel, key: LocalIssuer) -> pb.ListOrdersResponse:
    token = make_token(key, "alice")
    stub = orders_pb2_grpc.OrderServiceStub(channel)
    return stub.ListOrders(
        pb.ListOrdersRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=5
    )


def test_tls_serves_clients_that_trust_the_ca(
    edge_factory: EdgeFactory, pki: Pki, token_issuer: LocalIssuer
) -> None:
    edge = edge_factory(
        lambda port: open_channel(f"localhost:{port}", ca_file=pki.ca),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
    )
    assert list(health_call(edge.channel, token_issuer).orders) == []
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as plaintext, pytest.raises(grpc.RpcError) as error:
        health_call(plaintext, token_issuer)
    assert status_of(error.value) == grpc.StatusCode.UNAVAILABLE


def test_mtls_requires_a_client_certificate_from_the_private_ca(
    edge_factory: EdgeFactory, pki: Pki, token_issuer: LocalIssuer, tmp_path: Path
) -> None:
    # Given: an edge that requires client certificates issued by the private CA
    edge = edge_factory(
        lambda port: open_channel(
            f"localhost:{port}", ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key
        ),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
    )
    # Then: a client with a certificate is served ...
    assert list(health_call(edge.channel, token_issuer).orders) == []
    # ... and one without is refused at the handshake, before any RPC runs
    with (
        open_channel(f"localhost:{edge.port}", ca_file=pki.ca) as anonymous,
        pytest.raises(grpc.RpcError) as error,
    ):
        health_call(anonymous, token_issuer)
    assert status_of(error.value) == grpc.StatusCode.UNAVAILABLE
    # ... and so is one whose certificate another CA issued
    rogue_ca, rogue_key = _issue(tmp_path, "rogue-ca", x509.Name([]), None, ca=True)
    _issue(tmp_path, "client", rogue_ca.subject, rogue_key, ca=False)
    with (
        open_channel(
            f"localhost:{edge.port}",
            ca_file=pki.ca,
            cert_file=tmp_path / "client.pem",
            key_file=tmp_path / "client.key",
        ) as impostor,
        pytest.raises(grpc.RpcError) as error,
    ):
        health_call(impostor, token_issuer)
    assert status_of(error.value) == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateMachines]:
    """moto in server mode (executions recorded, not run), for an edge in another process."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client("stepfunctions")
    arns = [
        client.create_state_machine(name=name, definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
        for name in ("OrderSaga", "OrderCancellation")
    ]
    yield StateMachines(client, *arns)
    server.stop()


@contextmanager
def edge_process(edge_settings: EdgeSettings, log: Path) -> Iterator["subprocess.Popen[bytes]"]:
    """`python -m grpc_edge` with these settings, as the container runs it, killed if left running."""
    environment = os.environ | {
        k.upper(): str(v) for k, v in edge_settings.model_dump().items() if v is not None
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "grpc_edge"], env=environment, stdout=output, stderr=output
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_edge_process_serves_reconciles_and_stops_on_sigterm(
    settings: Settings,
    database: Database,
    moto_server: StateMachines,
    token_issuer: LocalIssuer,
    pki: Pki,
    tmp_path: Path,
) -> None:
    # Given: an order orphaned by an edge that died, and `python -m grpc_edge` with mTLS, as the
    # container runs it, reconciling often
    orphan = insert_orphan(database, age_seconds=120)
    edge_settings = make_edge_settings(
        settings,
        moto_server,
        token_issuer,
        grpc_port=free_port(),
        metrics_port=free_port(),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
        shutdown_grace_seconds=2,
        reconcile_interval_seconds=0.3,
    )
    log = tmp_path / "edge.log"
    deadline = Deadline(BUDGET_SECONDS)
    with edge_process(edge_settings, log) as process:
        # Then: its own health check says SERVING ...
        wait_for(deadline, "its health check to say SERVING", lambda: probe(edge_settings), process, log)
        # ... its metrics endpoint answers ...
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{edge_settings.metrics_port}/metrics", timeout=5)
        assert "grpc_server_handled_total" in metrics.read().decode()
        # ... and its reconciler starts the orphan's saga
        wait_for(
            deadline,
            "the reconciler to start the orphan's saga",
            lambda: [e["name"] for e in moto_server.executions(moto_server.saga_arn)] == [orphan],
            process,
            log,
        )
        # When: the orchestrator stops the task, then: it exits cleanly
        process.send_signal(signal.SIGTERM)
        assert exit_code(deadline, process, log) == 0, log.read_text()
    assert "edge stopped" in log.read_text()
    with database.transaction() as cursor:
        cursor.execute("SELECT execution_arn FROM orders WHERE order_id = %s", (orphan,))
        assert cursor.fetchone() == {
            "execution_arn": moto_server.executions(moto_server.saga_arn)[0]["executionArn"]
        }


def lock_waits(database: Database) -> int:
    """How many other statements of our user run a `FOR UPDATE` now (an RPC blocked on the row
    the test holds; the process list shows our own user's threads without the PROCESS privilege)."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST"
            " WHERE ID <> CONNECTION_ID() AND INFO LIKE %s",
            ("SELECT%FOR UPDATE",),
        )
        return int(cursor.fetchone()["n"])  # type: ignore[index]


def test_sigterm_drains_the_in_flight_rpc_refuses_new_ones_and_says_not_serving(
    settings: Settings,
    database: Database,
    moto_server: StateMachines,
    token_issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    # Given: the edge process with a grace period, a health watcher, and a CancelOrder in flight,
    # held on the order's row lock, which the test holds (no sleep decides who is first)
    order_id = insert_orphan(database, age_seconds=0)
    edge_settings = make_edge_settings(
        settings,
        moto_server,
        token_issuer,
        grpc_port=free_port(),
        metrics_port=0,
        shutdown_grace_seconds=120,
        reconcile_interval_seconds=0,
    )
    log = tmp_path / "edge.log"
    address = f"127.0.0.1:{edge_settings.grpc_port}"
    auth = (("authorization", f"Bearer {make_token(token_issuer, 'alice')}"),)
    deadline = Deadline(BUDGET_SECONDS)
    with edge_process(edge_settings, log) as process, grpc.insecure_channel(address) as channel:
        wait_for(deadline, "its health check to say SERVING", lambda: probe(edge_settings), process, log)
        health_stub = health_pb2_grpc.HealthStub(channel)
        watch = health_stub.Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=deadline.left("the health watch")
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        holder = Database(settings)
        with holder.transaction() as cursor:
            cursor.execute("SELECT order_id FROM orders WHERE order_id = %s FOR UPDATE", (order_id,))
            in_flight = stub.CancelOrder.future(
                pb.CancelOrderRequest(order_id=order_id, reason="drain"),
                metadata=auth,
                timeout=deadline.left("the CancelOrder"),
            )
            wait_for(
                deadline,
                "the CancelOrder to wait on the row",
                lambda: lock_waits(database) == 1,
                process,
                log,
            )
            # When: the orchestrator stops the task
            process.send_signal(signal.SIGTERM)
            # Then: health says NOT_SERVING at once (load balancers stop sending) ...
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()  # the watch is an RPC too: it would hold the drain to the grace's end
            # ... and a new call is refused, while the in-flight one still waits for its row
            wait_for(deadline, "a new call to be refused", lambda: refused(address, auth), process, log)
            assert not in_flight.done()
        # When: the row is released, then: the in-flight call completes within the grace ...
        try:
            drained = in_flight.result(timeout=deadline.left("the in-flight CancelOrder"))
        except grpc.FutureTimeoutError:
            raise AssertionError(
                f"the in-flight CancelOrder never ended; the edge's log:\n{log.read_text()}"
            ) from None
        assert drained.cancel_requested
        # ... and the process exits cleanly
        assert exit_code(deadline, process, log) == 0, log.read_text()
    holder.close()
    assert "edge stopped" in log.read_text()


def refused(address: str, auth: tuple[tuple[str, str]]) -> bool:
    """Whether a new call on a new connection is refused (UNAVAILABLE) rather than served."""
    with grpc.insecure_channel(address) as channel:
        try:
            orders_pb2_grpc.OrderServiceStub(channel).ListOrders(
                pb.ListOrdersRequest(), metadata=auth, timeout=5
            )
        except grpc.RpcError as exc:
            return exc.code() is grpc.StatusCode.UNAVAILABLE
    return False


def wait_for(
    deadline: Deadline,
    what: str,
    condition: Callable[[], bool],
    process: "subprocess.Popen[bytes]",
    log: Path,
) -> None:
    """Poll `condition()` while the edge process runs; fail with the edge's log if it exits first
    or the test's deadline passes."""
    deadline.wait_for(
        lambda: process.poll() is not None or condition(),
        what,
        details=lambda: f"the edge's log:\n{log.read_text()}",
    )
    assert process.poll() is None, f"the edge exited while waiting for {what}; its log:\n{log.read_text()}"


def exit_code(deadline: Deadline, process: "subprocess.Popen[bytes]", log: Path) -> int:
    """The edge's exit code, once it has exited within the test's deadline."""
    try:
        return process.wait(timeout=deadline.left("the edge to exit"))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the edge never exited; its log:\n{log.read_text()}") from None
