"""Schema migrations at deploy time: a function in the VPC run by a CDK trigger on every deploy
whose code or layers changed (the migrations live in the shared layer, and the feature flag
`@aws-cdk/aws-lambda:recognizeLayerVersion` makes a layer change a new function version), before
the saga functions and the state machines are updated. It logs in as the master user and creates
the application user the functions and the edge log in as."""

from aws_cdk import Duration, triggers
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.saga_function import SagaFunction, SagaResources
from order_saga.functions import FunctionSpec, Needs

APP_SECRET_SETTING = "MYSQL_APP_SECRET_ARN"  # noqa: S105 - a setting's name, not a secret  # read by cdk/runtime/migrate_schema/handler.py

# Not a saga step, so not in order_saga.functions: it exists only in AWS (locally `make migrate`).
MIGRATE_SCHEMA = FunctionSpec(
    "MigrateSchema",
    "migrations",
    "handler.handler",
    "Apply the schema migrations (deploy-time trigger)",
    frozenset({Needs.DATABASE}),
    timeout_seconds=300,
)


class SchemaMigration(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resources: SagaResources,
        before: list[Construct],
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = SagaFunction(
            self,
            "Handler",
            spec=MIGRATE_SCHEMA,
            resources=resources,
            code_dir=str(c.MIGRATION_HANDLER_DIR),
        )
        database = resources.database
        database.secret.grant_read(self.handler.function)
        self.handler.function.add_environment("MYSQL_SECRET_ARN", database.secret.secret_arn)
        self.handler.function.add_environment(APP_SECRET_SETTING, database.app_secret.secret_arn)
        self.trigger = triggers.Trigger(
            self,
            "Trigger",
            handler=self.handler.function,
            timeout=Duration.minutes(5),
            execute_before=before,
            execute_on_handler_change=True,
        )
