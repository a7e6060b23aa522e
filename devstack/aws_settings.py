"""The local AWS stack's settings (DEVSTACK_*): what the moto server, the wiring of its
resources and the commands that start them all read."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AwsStackSettings(BaseSettings):
    """Settings of the local AWS stack (environment variables DEVSTACK_*)."""

    model_config = SettingsConfigDict(env_prefix="DEVSTACK_", frozen=True, extra="ignore")

    moto_port: int = Field(35000, description="Port of the local moto server (the AWS endpoint)")
    region: str = Field("us-east-1", description="Region of the local AWS resources")
    retry_time_scale: float = Field(
        1.0, gt=0, le=1, description="Factor on the state machines' Retry waits (1 = real time)"
    )
    email_sender: str = Field(
        "orders@order-saga.example", description="The SES identity the functions send from"
    )
    secrets_extension_port: int = Field(
        0,
        ge=0,
        description="Port of the local Parameters and Secrets extension the functions read their secrets "
        "from (0 = a free port, picked by the moto server and given to its workers)",
    )
    secrets_extension_ttl: int = Field(
        300,
        ge=0,
        description="Seconds the local Parameters and Secrets extension keeps a secret (SECRETS_MANAGER_TTL)",
    )
    lambda_function_concurrency: int = Field(
        0, ge=0, description="Concurrent invocations per local function (0 = twice the cores)"
    )
    lambda_concurrency: int = Field(
        0, ge=0, description="Concurrent invocations of all local functions (0 = four times the cores)"
    )

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"
