"""Every setting of the system, read from the environment.

The names are the ones `.devstack/env` and the CDK stacks write, so a shell that sources
`.devstack/env` and a deployed Lambda function configure the code the same way.

A plain pydantic model that reads the environment itself: every setting is a scalar named by one
variable, and pydantic-settings (its sources, dotenv and dataclass machinery) would add to every
function's cold start about 40% of an `import boto3` for that.
"""

import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Settings(BaseModel):
    """Each field from the environment variable of its name (in any case), unless given."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        environment = {name.lower(): value for name, value in os.environ.items()}
        return {name: environment[name] for name in cls.model_fields if name in environment} | given

    mysql_host: str = Field("127.0.0.1", description="MySQL host (the RDS Proxy endpoint in AWS)")
    mysql_port: int = Field(3306, description="MySQL port")
    mysql_user: str = Field("orders", description="MySQL user, unless MYSQL_SECRET_ARN is set")
    mysql_password: str = Field("", description="MySQL password, unless MYSQL_SECRET_ARN is set")
    mysql_database: str = Field("orders", description="MySQL database (schema) name")
    mysql_secret_arn: str | None = Field(
        None,
        description="Secrets Manager secret holding the MySQL credentials (RDS JSON format); "
        "when set, it wins over MYSQL_USER/MYSQL_PASSWORD",
    )
    mysql_tls: bool = Field(False, description="Require TLS to MySQL, verifying the server certificate")
    mysql_connect_timeout: int = Field(5, description="Seconds to wait for a MySQL connection")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis URL; rediss:// for TLS (ElastiCache in transit)"
    )
    redis_auth_secret_arn: str | None = Field(
        None, description="Secrets Manager secret holding the Redis AUTH token (ElastiCache)"
    )
    redis_timeout: float = Field(2.0, description="Seconds for a Redis connect or command")

    payment_gateway_url: str = Field("", description="Base URL of the HTTP payment gateway")
    payment_gateway_secret_arn: str | None = Field(
        None, description="Secrets Manager secret holding the payment gateway's API key"
    )
    payment_gateway_timeout: float = Field(8.0, description="Seconds to wait for the payment gateway")
    email_sender: str = Field(
        "orders@example.com", description="SES identity the notification e-mails come from"
    )
    order_saga_state_machine_arn: str = Field(
        "",
        description="ARN of the OrderSaga state machine's alias (the latest release) CreateOrder starts",
    )
    order_cancellation_state_machine_arn: str = Field(
        "",
        description="ARN of the cancellation state machine's alias CancelOrder starts for a CONFIRMED order",
    )
    notification_queue_url: str = Field(
        "", description="SQS queue of the customer notices (the saga watchdog queues its notices there)"
    )
    compensation_dlq_url: str = Field(
        "", description="SQS queue where a compensation that keeps failing leaves its full context"
    )
    idempotency_ttl_seconds: int = Field(
        3600, description="How long Redis remembers a step's result (the fast path before MySQL)"
    )

    secret_max_age: int = Field(300, description="Seconds a secret read from Secrets Manager is cached")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (a Lambda environment does not change while warm)."""
    return Settings()
