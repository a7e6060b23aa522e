"""The chaos campaign on the e2e tier's local stack (its own database, moto with scaled retry
waits), with an edge process of its own so the campaign can SIGKILL and restart it."""

import os
import socket
from collections.abc import Iterator
from functools import partial

import pytest

from devstack import services
from devstack.chaos import ChaosStack
from devstack.commands_audit import audit_books
from devstack.devtokens import ensure_dev_keys, mint_token
from devstack.stack import EdgeServer
from grpc_edge.settings import EdgeSettings
from tests.e2e.stack import LocalStack


class ChaosEdge(EdgeServer):
    """An edge over the e2e stack's database and state machines, with a pid file of its own."""

    name = "chaos-edge"

    def __init__(self, port: int, stack: LocalStack) -> None:
        super().__init__(port, metrics_port=0)
        self.stack = stack

    def process_env(self) -> dict[str, str]:
        database = {
            key.upper(): str(value)
            for key, value in self.stack.settings.model_dump().items()
            if value is not None
        }
        edge = EdgeSettings()  # the issuer and audience the dev tokens carry
        return (
            os.environ
            | database
            | {
                "AWS_ENDPOINT_URL": self.stack.aws.endpoint_url,
                "AWS_REGION": self.stack.aws.region,
                "AWS_DEFAULT_REGION": self.stack.aws.region,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "ORDER_SAGA_STATE_MACHINE_ARN": self.stack.saga_arn,
                "ORDER_CANCELLATION_STATE_MACHINE_ARN": self.stack.cancellation_arn,
                "JWT_PUBLIC_KEY_FILE": str(ensure_dev_keys()),
                "JWT_ISSUER": edge.jwt_issuer,
                "JWT_AUDIENCE": edge.jwt_audience,
                "GRPC_HOST": "127.0.0.1",
                "GRPC_PORT": str(self.port),
                "METRICS_PORT": "0",
                "RATE_LIMIT_PER_MINUTE": "0",
                "RECONCILE_INTERVAL_SECONDS": "2",
                "RECONCILE_GRACE_SECONDS": "5",
                "POWERTOOLS_SERVICE_NAME": "grpc-edge",
            }
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def chaos_stack(stack: LocalStack) -> Iterator[ChaosStack]:
    """The e2e stack (empty tables, no faults) with a running edge, as the campaign sees it."""
    edge = ChaosEdge(free_port(), stack)
    edge.start()
    mariadb, redis_server = services.servers()
    queues = {"compensation-dlq": stack.dlq_url}
    yield ChaosStack(
        address=f"127.0.0.1:{edge.port}",
        settings=stack.settings,
        sfn=stack.sfn,
        sqs=stack.sqs,
        saga_arn=stack.saga_arn,
        notification_queue_url=stack.notification_queue_url,
        edge=edge,
        mariadb=mariadb,
        redis_server=redis_server,
        mint_token=mint_token,
        audit=partial(audit_books, stack.settings, stack.sfn, stack.sqs, queues),
    )
    edge.stop()
