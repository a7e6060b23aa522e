"""TLS and mTLS by configuration, and the process: health check, SIGTERM drains and exits."""

import datetime
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto.server import ThreadedMotoServer

from grpc_edge.channel import open_channel
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.healthcheck import probe
from order_saga.db import Database
from order_saga.settings import Settings

from .conftest import (
    DEFINITION,
    ROLE,
    EdgeFactory,
    SigningKey,
    StateMachines,
    make_edge_settings,
    make_token,
    status_of,
)
from .test_operations import free_port, insert_orphan


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


def health_call(channel: grpc.Channel, key: SigningKey) -> pb.ListOrdersResponse:
    token = make_token(key, "alice")
    stub = orders_pb2_grpc.OrderServiceStub(channel)
    return stub.ListOrders(
        pb.ListOrdersRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=5
    )


def test_tls_serves_clients_that_trust_the_ca(
    edge_factory: EdgeFactory, pki: Pki, signing_key: SigningKey
) -> None:
    edge = edge_factory(
        lambda port: open_channel(f"localhost:{port}", ca_file=pki.ca),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
    )
    assert list(health_call(edge.channel, signing_key).orders) == []
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as plaintext, pytest.raises(grpc.RpcError) as error:
        health_call(plaintext, signing_key)
    assert status_of(error.value) == grpc.StatusCode.UNAVAILABLE


def test_mtls_requires_a_client_certificate(
    edge_factory: EdgeFactory, pki: Pki, signing_key: SigningKey
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
    assert list(health_call(edge.channel, signing_key).orders) == []
    # ... and one without is refused at the handshake, before any RPC runs
    with (
        open_channel(f"localhost:{edge.port}", ca_file=pki.ca) as anonymous,
        pytest.raises(grpc.RpcError) as error,
    ):
        health_call(anonymous, signing_key)
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


def test_the_edge_process_serves_reconciles_and_drains_on_sigterm(
    settings: Settings,
    database: Database,
    moto_server: StateMachines,
    signing_key: SigningKey,
    pki: Pki,
    tmp_path: Path,
) -> None:
    # Given: an order orphaned by an edge that died, and `python -m grpc_edge` with mTLS, as the
    # container runs it, reconciling often
    orphan = insert_orphan(database, age_seconds=120)
    edge_settings = make_edge_settings(
        settings,
        moto_server,
        signing_key,
        grpc_port=free_port(),
        metrics_port=free_port(),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
        shutdown_grace_seconds=2,
        reconcile_interval_seconds=0.3,
    )
    environment = os.environ | {
        k.upper(): str(v) for k, v in edge_settings.model_dump().items() if v is not None
    }
    log = tmp_path / "edge.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "grpc_edge"], env=environment, stdout=output, stderr=output
        )
    try:
        # Then: its own health check says SERVING ...
        wait_for(lambda: probe(edge_settings), process, log)
        # ... its metrics endpoint answers ...
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{edge_settings.metrics_port}/metrics", timeout=5)
        assert "grpc_server_handled_total" in metrics.read().decode()
        # ... and its reconciler starts the orphan's saga
        wait_for(
            lambda: [e["name"] for e in moto_server.executions(moto_server.saga_arn)] == [orphan],
            process,
            log,
        )

        # When: the orchestrator stops the task
        process.send_signal(signal.SIGTERM)
        # Then: it stops cleanly within the grace period
        assert process.wait(timeout=10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "edge stopped" in log.read_text()
    with database.transaction() as cursor:
        cursor.execute("SELECT execution_arn FROM orders WHERE order_id = %s", (orphan,))
        assert cursor.fetchone() == {
            "execution_arn": moto_server.executions(moto_server.saga_arn)[0]["executionArn"]
        }


def wait_for(
    condition: Callable[[], bool], process: "subprocess.Popen[bytes]", log: Path, seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
