"""The container's HEALTHCHECK: ask the server's own grpc.health.v1 service whether it serves.

Under TLS it trusts the server's certificate file and the client CA; under mTLS it presents the
server's own certificate, so there that certificate must come from the client CA and allow the
clientAuth usage as well as serverAuth (one private CA issues both).
"""

import sys

import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .channel import open_channel
from .settings import EdgeSettings

TIMEOUT_SECONDS = 3.0


def certificate_name(pem: bytes) -> str | None:
    """The first DNS name of the certificate (what a client must ask for), if it has one."""
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    dns_names = names.value.get_values_for_type(x509.DNSName)
    return dns_names[0] if dns_names else None


def probe(settings: EdgeSettings) -> bool:
    address = f"127.0.0.1:{settings.grpc_port}"
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        channel = open_channel(address)
    else:
        trust = settings.tls_cert_file.read_bytes()
        if settings.tls_client_ca_file is not None:
            trust += settings.tls_client_ca_file.read_bytes()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=trust,
            private_key=settings.tls_key_file.read_bytes() if settings.tls_client_ca_file else None,
            certificate_chain=settings.tls_cert_file.read_bytes() if settings.tls_client_ca_file else None,
        )
        name = certificate_name(settings.tls_cert_file.read_bytes())
        options = [("grpc.ssl_target_name_override", name)] if name else []
        channel = grpc.secure_channel(address, credentials, options=options)
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    sys.exit(0 if probe(EdgeSettings()) else 1)
