"""The CDK app: `cdk synth -c env=dev|prod` (cdk.json runs `python -m cdk.app`)."""

import sys
from typing import Any

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from cdk import constants as c
from cdk.stacks import DataStack, DeploymentOptions, EdgeStack, NetworkStack, ObservabilityStack, SagaStack

DEFAULT_REGION = "us-east-1"
# The reserved example domains (RFC 2606): a sender there can never be verified in SES.
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")


class MissingContext(ValueError):
    """A context value production cannot run without; synthesis stops before building anything."""


def sender_problem(sender: str) -> str | None:
    """Why SES could never send from `sender` (none, or a reserved example domain), else None."""
    local, at, domain = sender.rpartition("@")
    if not (local and at and domain):
        return (
            "-c emailSender=<an address SES can verify: of your verified domain, or in dev your own mailbox>"
        )
    if domain.lower() in EXAMPLE_DOMAINS:
        return (
            f"-c emailSender=<an address SES can verify> (not {sender}: an example domain is never verified)"
        )
    return None


def context_problems(options: DeploymentOptions) -> list[str]:
    """What keeps these options from a deployment: every environment names its payment gateway
    (dev: the provider's test mode) and a sender SES can verify (dev: an address, prod: an
    address of its verified domain)."""
    problems = []
    sender = sender_problem(options.email_sender)
    if sender:
        problems.append(sender)
    if not options.payment_gateway_url.startswith("https://"):
        problems.append("-c paymentGatewayUrl=https://<your payment gateway's API, its test mode for dev>")
    return problems


def options_from_context(app: App) -> DeploymentOptions:
    def context(key: str, default: str) -> str:
        value = app.node.try_get_context(key)
        return default if value is None else str(value)

    options = DeploymentOptions(
        config=c.environment_config(context("env", "dev")),
        region=context("region", DEFAULT_REGION),
        email_sender=context("emailSender", ""),
        payment_gateway_url=context("paymentGatewayUrl", ""),
    )
    problems = context_problems(options)
    if problems:
        raise MissingContext(
            f"{options.config.name} needs {' and '.join(problems)}; see docs/deploy.md, Prerequisites"
        )
    return options


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> App:
    """Every stack of one environment, with cdk-nag's AwsSolutions checks registered."""
    app = App(context=context, outdir=outdir)
    options = options_from_context(app)
    prefix = f"{c.PROJECT}-{options.config.name}"
    network = NetworkStack(app, f"{prefix}-Network", options=options)
    data = DataStack(app, f"{prefix}-Data", options=options, network=network.network)
    saga = SagaStack(app, f"{prefix}-Saga", options=options, network=network.network, data=data)
    edge = EdgeStack(app, f"{prefix}-Edge", options=options, network=network.network, data=data, saga=saga)
    ObservabilityStack(app, f"{prefix}-Observability", options=options, data=data, saga=saga, edge=edge)
    Tags.of(app).add("project", "order-saga")
    Tags.of(app).add("environment", options.config.name)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    try:
        app = build_app()
    except ValueError as exc:  # MissingContext, an unknown environment
        sys.exit(f"error: {exc}")  # one line on stderr, exit status 1, nothing synthesized
    app.synth()


if __name__ == "__main__":
    main()
