"""The chaos campaign on the e2e tier's own stack (a state folder and ports of its own, started
with `order-saga up`): the seeded campaign runs as developers run it, `order-saga chaos` in the
stack's environment, so the edge it kills and the servers it restarts are that stack's."""

from functools import partial

import pytest

from devstack.chaos_stack import ChaosStack
from devstack.gateway.process import PaymentGatewayServer
from devstack.services import MariaDB, Redis
from devstack.stack import EdgeServer
from order_ops.commands_audit import audit_books
from tests.support.stack import LocalStack


@pytest.fixture
def chaos_stack(stack: LocalStack) -> ChaosStack:
    """The e2e stack (empty tables, no faults) as an in-process campaign sees it."""
    env = stack.env
    return ChaosStack(
        address=stack.grpc_address,
        settings=stack.settings,
        sfn=stack.sfn,
        sqs=stack.sqs,
        saga_arn=stack.saga_arn,
        notification_queue_url=stack.notification_queue_url,
        edge=EdgeServer(
            int(env["DEVSTACK_GRPC_PORT"]), int(env["DEVSTACK_METRICS_PORT"])
        ),  # not restarted here
        mariadb=MariaDB(int(env["DEVSTACK_MYSQL_PORT"]), stack.state_dir),
        redis_server=Redis(int(env["DEVSTACK_REDIS_PORT"]), stack.state_dir),
        retry_time_scale=stack.aws.retry_time_scale,
        gateway=PaymentGatewayServer(int(env["DEVSTACK_GATEWAY_PORT"]), stack.state_dir),
        secrets=stack.client("secretsmanager"),
        mint_token=stack.issuer.customer_token,
        audit=partial(
            audit_books,
            stack.settings,
            stack.gateway,
            stack.sfn,
            stack.sqs,
            {"compensation-dlq": stack.dlq_url},
        ),
        faults_file=stack.faults_file,
    )
