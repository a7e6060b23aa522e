"""The edge's contract pieces that need no server: stubs, settings, the error mapping."""

import shutil
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from pydantic import ValidationError

from devstack import protogen
from grpc_edge.errors import rich_status, status_code_for
from grpc_edge.server import build_verifier
from grpc_edge.settings import EdgeSettings
from order_saga import errors

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_the_committed_stubs_match_the_protos() -> None:
    protogen.check()


def test_a_stub_edited_by_hand_is_reported_as_drift(tmp_path: Path) -> None:
    copy = tmp_path / "generated"
    shutil.copytree(protogen.OUTPUT_ROOT, copy)
    stub = copy / "orders" / "v1" / "orders_pb2.pyi"
    stub.write_text(stub.read_text() + "\n# edited\n")
    with pytest.raises(protogen.StubsDrifted, match=r"orders_pb2\.pyi"):
        protogen.check(copy)


def test_every_edge_setting_is_documented_in_the_readme() -> None:
    missing = [name.upper() for name in EdgeSettings.model_fields if f"| `{name.upper()}` |" not in README]
    assert missing == []


@pytest.mark.parametrize(
    "overrides",
    [{"tls_cert_file": "cert.pem"}, {"tls_key_file": "key.pem"}, {"tls_client_ca_file": "ca.pem"}],
)
def test_incomplete_tls_settings_are_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        EdgeSettings(**overrides)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidRequest([errors.FieldViolation("items", "empty")]), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.InvalidOrder("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotAuthenticated("no token"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied("no scope"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.OrderNotFound("gone"), grpc.StatusCode.NOT_FOUND),
        (errors.UnknownProduct("unicorn"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.OutOfStock("lamp"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.InvalidStateTransition("FAILED"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.IdempotencyConflict("key"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.RateLimited("slow down", retry_after=3), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.DatabaseUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (errors.CacheUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (errors.WorkflowUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (errors.ConfigurationError("MYSQL_USER"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_domain_error_has_its_status_code(error: errors.OrderSagaError, code: grpc.StatusCode) -> None:
    assert status_code_for(error) == code
    assert rich_status(error).code == code


def test_field_violations_travel_as_bad_request_details() -> None:
    status = rich_status(
        errors.InvalidRequest([errors.FieldViolation("items[0].quantity", "must be 1..1000")])
    )
    [(key, value)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    detail = status_pb2.Status.FromString(value).details[0]
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("items[0].quantity", "must be 1..1000")
    ]


def test_an_unexpected_exception_is_internal_and_says_nothing() -> None:
    status = rich_status(KeyError("secret detail"))
    assert (status.code, status.details) == (grpc.StatusCode.INTERNAL, "internal error")


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"jwt_issuer": "https://issuer.test/pool"},
        {"jwt_jwks_url": "https://issuer.test/pool/.well-known/jwks.json"},
    ],
)
def test_the_edge_refuses_to_start_without_its_token_issuer_and_jwks(given: dict[str, str]) -> None:
    settings = EdgeSettings(jwt_issuer=None, jwt_jwks_url=None).model_copy(update=given)
    with pytest.raises(errors.ConfigurationError, match="JWT_ISSUER and JWT_JWKS_URL"):
        build_verifier(settings)
