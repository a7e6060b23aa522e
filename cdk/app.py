"""The CDK app: `cdk synth -c env=dev|prod` (cdk.json runs `python -m cdk.app`)."""

from typing import Any

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from cdk import constants as c
from cdk.stacks import DataStack, DeploymentOptions, EdgeStack, NetworkStack, ObservabilityStack, SagaStack

DEFAULT_SENDER = "orders@example.com"
DEFAULT_REGION = "us-east-1"


def options_from_context(app: App) -> DeploymentOptions:
    def context(key: str, default: str) -> str:
        value = app.node.try_get_context(key)
        return default if value is None else str(value)

    return DeploymentOptions(
        config=c.environment_config(context("env", "dev")),
        region=context("region", DEFAULT_REGION),
        email_sender=context("emailSender", DEFAULT_SENDER),
        payment_gateway_url=context("paymentGatewayUrl", ""),
    )


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> App:
    """Every stack of one environment, with cdk-nag's AwsSolutions checks registered."""
    app = App(context=context, outdir=outdir)
    options = options_from_context(app)
    prefix = f"{c.PROJECT}-{options.config.name}"
    network = NetworkStack(app, f"{prefix}-Network", options=options)
    data = DataStack(app, f"{prefix}-Data", options=options, network=network.network)
    saga = SagaStack(app, f"{prefix}-Saga", options=options, network=network.network, data=data)
    EdgeStack(app, f"{prefix}-Edge", options=options, network=network.network, data=data, saga=saga)
    ObservabilityStack(app, f"{prefix}-Observability", options=options, saga=saga)
    Tags.of(app).add("project", "order-saga")
    Tags.of(app).add("environment", options.config.name)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
