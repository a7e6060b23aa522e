"""The identity model in Cognito: shoppers sign in with the customer app (a public client, the
authorization code with PKCE), trusted backends with the service client (client credentials, and
the only client that may act for a customer)."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from cdk import constants as c
from cdk.app import MissingContext, options_from_context
from tests.support.synth import CUSTOMER_APP_CONTEXT, REQUIRED_CONTEXT, Synthesized, cdk_context, run_app

READ, WRITE, ACT_AS = (f"{c.RESOURCE_SERVER_ID}/{s}" for s in (c.SCOPE_READ, c.SCOPE_WRITE, c.SCOPE_ACT_AS))
# The logical id of the machine client every deployed stack has: its client id and secret stay.
SERVICE_CLIENT_ID = "IdentityUserPoolClient486F4CC5"


def clients(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in synth.resources("Edge", "AWS::Cognito::UserPoolClient").items()}


def customer_client(synth: Synthesized) -> dict[str, Any]:
    (client,) = [p for k, p in clients(synth).items() if k != SERVICE_CLIENT_ID]
    return client


def scopes(synth: Synthesized, client: dict[str, Any]) -> set[str]:
    """The client's scopes as tokens carry them: `<resource server>/<scope>`, or a standard one."""
    servers = synth.resources("Edge", "AWS::Cognito::UserPoolResourceServer")
    named = set()
    for scope in client["AllowedOAuthScopes"]:
        if isinstance(scope, str):
            named.add(scope)
            continue
        (server, suffix) = scope["Fn::Join"][1]
        named.add(servers[server["Ref"]]["Properties"]["Identifier"] + suffix)
    return named


def test_the_resource_server_has_exactly_the_three_scopes(synthesized: Synthesized) -> None:
    (server,) = synthesized.resources("Edge", "AWS::Cognito::UserPoolResourceServer").values()
    assert server["Properties"]["Identifier"] == c.RESOURCE_SERVER_ID
    names = sorted(s["ScopeName"] for s in server["Properties"]["Scopes"])
    assert names == sorted([c.SCOPE_READ, c.SCOPE_WRITE, c.SCOPE_ACT_AS])


def test_the_service_client_keeps_its_id_and_may_act_for_customers(synthesized: Synthesized) -> None:
    service = clients(synthesized)[SERVICE_CLIENT_ID]
    assert service["GenerateSecret"] is True
    assert service["AllowedOAuthFlows"] == ["client_credentials"]
    assert scopes(synthesized, service) == {READ, WRITE, ACT_AS}
    # no user signs in through it: only the refresh flow the CDK always allows, which
    # client-credentials tokens never use
    assert service["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]


def test_the_customer_client_is_public_with_the_code_grant_only(synthesized: Synthesized) -> None:
    customer = customer_client(synthesized)
    assert customer["GenerateSecret"] is False
    assert customer["AllowedOAuthFlows"] == ["code"]
    assert customer["ExplicitAuthFlows"] == []  # no sign-in through the API, only the hosted UI
    assert customer["SupportedIdentityProviders"] == ["COGNITO"]
    assert customer["CallbackURLs"] == CUSTOMER_APP_CONTEXT["customerCallbackUrls"].split(",")
    assert customer["LogoutURLs"] == CUSTOMER_APP_CONTEXT["customerLogoutUrls"].split(",")


def test_a_customer_token_reads_and_writes_its_own_orders_and_never_acts_for_another(
    synthesized: Synthesized,
) -> None:
    customer = customer_client(synthesized)
    assert scopes(synthesized, customer) == {READ, WRITE, "openid"}
    assert ACT_AS not in json.dumps(customer)


def test_customer_sessions_are_short_rotated_and_revocable(synthesized: Synthesized) -> None:
    customer = customer_client(synthesized)
    units = customer["TokenValidityUnits"]
    assert (customer["AccessTokenValidity"], units["AccessToken"]) == (60, "minutes")
    assert (customer["RefreshTokenValidity"], units["RefreshToken"]) == (30 * 24 * 60, "minutes")
    assert customer["RefreshTokenRotation"]["Feature"] == "ENABLED"
    assert customer["EnableTokenRevocation"] is True
    assert customer["PreventUserExistenceErrors"] == "ENABLED"


def test_shoppers_sign_up_themselves_with_optional_totp(synthesized: Synthesized) -> None:
    (pool,) = synthesized.resources("Edge", "AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is False
    assert props["AutoVerifiedAttributes"] == ["email"]
    assert props["UserAttributeUpdateSettings"]["AttributesRequireVerificationBeforeUpdate"] == ["email"]
    assert props["MfaConfiguration"] == "OPTIONAL"
    assert props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]


def test_prod_protects_sign_ins_and_mails_codes_through_its_domain(synthesized: Synthesized) -> None:
    (pool,) = synthesized.resources("Edge", "AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    if synthesized.env == "prod":
        assert props["UserPoolTier"] == "PLUS"
        assert props["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}
        email = props["EmailConfiguration"]
        assert email["EmailSendingAccount"] == "DEVELOPER"
        assert email["From"] == REQUIRED_CONTEXT["emailSender"]
        assert json.dumps(email["SourceArn"]).endswith(f':identity/{c.sender_domain(email["From"])}"]]}}')
    else:
        assert props["UserPoolTier"] == "ESSENTIALS"
        assert "UserPoolAddOns" not in props
        assert props["EmailConfiguration"]["EmailSendingAccount"] == "COGNITO_DEFAULT"


def test_the_outputs_name_both_clients_and_the_hosted_ui(synthesized: Synthesized) -> None:
    outputs = synthesized.template("Edge")["Outputs"]
    assert outputs["ServiceClientId"]["Value"] == {"Ref": SERVICE_CLIENT_ID}
    (customer,) = [k for k in clients(synthesized) if k != SERVICE_CLIENT_ID]
    assert outputs["CustomerClientId"]["Value"] == {"Ref": customer}
    assert json.dumps(outputs["AuthorizeUrl"]["Value"]).endswith('/oauth2/authorize"]]}')
    assert json.dumps(outputs["TokenUrl"]["Value"]).endswith('/oauth2/token"]]}')
    assert "UserPoolId" in outputs
    assert "ClientId" not in outputs  # renamed: docs/deploy.md names ServiceClientId


def test_the_edge_reads_no_audience_setting(synthesized: Synthesized) -> None:
    # The resource server's prefix on the scopes is the audience check now
    (task,) = synthesized.resources("Edge", "AWS::ECS::TaskDefinition").values()
    (edge,) = [d for d in task["Properties"]["ContainerDefinitions"] if d["Name"] == "Edge"]
    names = {v["Name"] for v in edge["Environment"]}
    assert {"JWT_ISSUER", "JWT_JWKS_URL"} <= names
    assert "JWT_AUDIENCE" not in names


def options(env: str, **context: str) -> None:
    options_from_context(App(context=cdk_context(env) | context))


def test_without_callback_urls_synthesis_stops_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    result = run_app(cdk_context("dev") | {"customerCallbackUrls": ""}, tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("b'")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: dev needs -c customerCallbackUrls=<where the hosted UI returns")
    assert not list(tmp_path.glob("*.template.json"))


@pytest.mark.parametrize(
    ("env", "url", "why"),
    [
        ("dev", "http://shop.test/signed-in", "plain http"),
        ("prod", "http://localhost:3000/signed-in", "plain http (only http://localhost, and only in dev)"),
        ("dev", "shop.test/signed-in", "neither https:// nor an app's scheme"),
        ("dev", "localhost:3000/signed-in", "neither https:// nor an app's scheme"),
        ("dev", "https:///signed-in", "no host"),
        ("dev", "https://shop.test/signed-in#done", "a fragment"),
        ("dev", "javascript://shop.test/%0aalert(1)", "the browser's own javascript: scheme"),
    ],
)
def test_a_callback_url_the_app_could_lose_the_code_to_is_refused(env: str, url: str, why: str) -> None:
    with pytest.raises(MissingContext, match=r"customerCallbackUrls=.*" + re.escape(f"(not {url}: {why}")):
        options(env, customerCallbackUrls=f"https://shop.test/signed-in,{url}")


def test_a_logout_url_follows_the_same_rule() -> None:
    with pytest.raises(MissingContext, match=r"customerLogoutUrls=.*\(not http://shop.test/: plain http"):
        options("dev", customerLogoutUrls="http://shop.test/")


@pytest.mark.parametrize(
    ("env", "urls"),
    [
        ("prod", "https://shop.test/signed-in, com.example.shop://callback, myapp:/callback"),
        ("dev", "http://localhost:3000/signed-in"),
    ],
)
def test_https_an_apps_own_scheme_and_a_developers_localhost_are_accepted(env: str, urls: str) -> None:
    options(env, customerCallbackUrls=urls)


def test_callback_urls_may_be_a_list_in_cdk_json() -> None:
    app = App(context=cdk_context("dev") | {"customerCallbackUrls": ["https://a.test/cb", "app.test:/cb"]})
    assert options_from_context(app).customer_app.callback_urls == ("https://a.test/cb", "app.test:/cb")
