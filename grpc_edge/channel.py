"""Client channels to the edge: plaintext, TLS, or mTLS (used by the CLI, the health check, tests)."""

from pathlib import Path

import grpc


def open_channel(
    address: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    server_name: str | None = None,
) -> grpc.Channel:
    """A channel to `address`; TLS when `ca_file` is given, presenting a client certificate when
    `cert_file`/`key_file` are. `server_name` overrides the name checked against the certificate."""
    if ca_file is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(),
        private_key=key_file.read_bytes() if key_file else None,
        certificate_chain=cert_file.read_bytes() if cert_file else None,
    )
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, credentials, options=options)
