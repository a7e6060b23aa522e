"""The CDK app: `cdk synth -c env=dev|prod` (cdk.json runs `python -m cdk.app`)."""

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aws_cdk import App, Tags, Validations, cx_api
from cdk_nag import AwsSolutionsChecks

from cdk import constants as c
from cdk.capabilities.identity import CustomerApp
from cdk.references import carry_through_ssm
from cdk.stacks import DataStack, DeploymentOptions, EdgeStack, NetworkStack, ObservabilityStack, SagaStack

DEFAULT_REGION = "us-east-1"
# The reserved example domains (RFC 2606): a sender there can never be verified in SES.
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
# Schemes a browser runs or reads itself: a redirect there would hand the code to a page.
BROWSER_SCHEMES = ("javascript", "data", "file", "blob", "about", "vbscript")
CALLBACK_URLS = (
    "-c customerCallbackUrls=<where the hosted UI returns a signed-in shopper: https://..., or the "
    "mobile app's own scheme such as com.example.shop://callback; comma-separated>"
)
LOGOUT_URLS = "-c customerLogoutUrls=<https://... or the app's own scheme; comma-separated>"


class MissingContext(ValueError):
    """A context value production cannot run without; synthesis stops before building anything."""


def redirect_refusal(url: str, env: str) -> str | None:
    """Why the customer app may not be sent back to `url` (None: it may).

    https:// with a host; a mobile app's own scheme followed by `:/` (RFC 8252's private-use
    schemes, e.g. `com.example.shop://callback`); http://localhost only in dev, for an app run on
    the developer's machine. Never a fragment (RFC 6749 §3.1.2) or a scheme the browser handles.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    on_this_machine = scheme == "http" and parts.hostname == "localhost" and env == "dev"
    refusals = (
        ("#" in url, "a fragment"),
        (scheme == "https" and not parts.hostname, "no host"),
        (scheme == "http" and not on_this_machine, "plain http (only http://localhost, and only in dev)"),
        (not scheme or not url[len(scheme) + 1 :].startswith("/"), "neither https:// nor an app's scheme:/"),
        (scheme in BROWSER_SCHEMES, f"the browser's own {scheme}: scheme"),
    )
    return next((why for refused, why in refusals if refused), None)


def redirect_problems(setting: str, urls: tuple[str, ...], env: str) -> list[str]:
    refused = [f"{url}: {why}" for url in urls if (why := redirect_refusal(url, env))]
    return [f"{setting} (not {'; '.join(refused)})"] if refused else []


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
    (dev: the provider's test mode), where the customer app signs in, and a sender SES can verify
    (dev: an address, prod: an address of its verified domain)."""
    problems = []
    env = options.config.name
    sender = sender_problem(options.email_sender)
    if sender:
        problems.append(sender)
    if not options.payment_gateway_url.startswith("https://"):
        problems.append("-c paymentGatewayUrl=https://<your payment gateway's API, its test mode for dev>")
    callbacks = options.customer_app.callback_urls
    problems += redirect_problems(CALLBACK_URLS, callbacks, env) if callbacks else [CALLBACK_URLS]
    problems += redirect_problems(LOGOUT_URLS, options.customer_app.logout_urls, env)
    return problems


def options_from_context(app: App) -> DeploymentOptions:
    def context(key: str, default: str) -> str:
        value = app.node.try_get_context(key)
        return default if value is None else str(value)

    def urls(key: str) -> tuple[str, ...]:
        """A list in cdk.json, or comma-separated on the command line (`-c key=a,b`)."""
        value = app.node.try_get_context(key) or ""
        items = value if isinstance(value, list) else str(value).split(",")
        return tuple(url for url in (str(item).strip() for item in items) if url)

    options = DeploymentOptions(
        config=c.environment_config(context("env", "dev")),
        region=context("region", DEFAULT_REGION),
        email_sender=context("emailSender", ""),
        payment_gateway_url=context("paymentGatewayUrl", ""),
        customer_app=CustomerApp(
            callback_urls=urls("customerCallbackUrls"), logout_urls=urls("customerLogoutUrls")
        ),
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


def synthesize(app: App) -> cx_api.CloudAssembly:
    """The cloud assembly of `app`, its stacks sharing values through SSM (cdk/references.py)."""
    directory = Path(app.synth().directory)
    carry_through_ssm(directory)
    return cx_api.CloudAssembly(str(directory))


def main() -> None:
    try:
        app = build_app()
    except ValueError as exc:  # MissingContext, an unknown environment
        sys.exit(f"error: {exc}")  # one line on stderr, exit status 1, nothing synthesized
    synthesize(app)


if __name__ == "__main__":
    main()
