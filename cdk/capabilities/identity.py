"""Cognito: the user pool of the shoppers, the resource server `orders-api` with the scopes
`orders:read`, `orders:write` and `orders:act-as`, and two app clients.

- The customer client: the shoppers' mobile app or single-page app. A public client (no secret)
  with the authorization-code grant only, used with PKCE against the hosted UI; its access token's
  `sub` is the shopper. It may read and write the shopper's own orders, never act for another.
- The service client: trusted backends (a storefront, a support tool) with the client-credentials
  grant and a secret; its token's `sub` is the client id, and with `orders:act-as` the backend
  names the shopper it acts for in the `x-customer-id` metadata.

docs/decisions.md records the choices (PKCE, sign-up, MFA, threat protection, the redirect rule).
"""

from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge

# A shopper's access token lives an hour; the refresh token keeps the app signed in for 30 days
# from the sign-in (rotation does not extend it), then the shopper signs in again.
CUSTOMER_ACCESS_TOKEN_VALIDITY = Duration.hours(1)
CUSTOMER_REFRESH_TOKEN_VALIDITY = Duration.days(30)
# Each refresh returns a new refresh token; the old one still works this long, for a retry after
# a lost answer (Cognito allows 0 to 60 seconds).
REFRESH_TOKEN_ROTATION_GRACE = Duration.seconds(10)


@dataclass(frozen=True)
class CustomerApp:
    """Where the hosted UI may send a shopper back: after sign-in, and after sign-out."""

    callback_urls: tuple[str, ...]
    logout_urls: tuple[str, ...] = ()


class Identity(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: c.EnvironmentConfig,
        customer_app: CustomerApp,
        email_sender: str,
    ) -> None:
        super().__init__(scope, construct_id)
        plus = config.user_pool_plan == cognito.FeaturePlan.PLUS
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            # Shoppers sign up in the hosted UI and confirm their address with a code.
            self_sign_up_enabled=True,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            # A changed address takes effect once its code is confirmed: an unconfirmed address
            # can never receive the account's recovery code.
            keep_original=cognito.KeepOriginalAttrs(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            email=user_pool_email(config, email_sender),
            feature_plan=config.user_pool_plan,
            standard_threat_protection_mode=(
                cognito.StandardThreatProtectionMode.FULL_FUNCTION if plus else None
            ),
            removal_policy=RemovalPolicy.DESTROY if config.name == "dev" else RemovalPolicy.RETAIN,
        )
        read = cognito.ResourceServerScope(scope_name=c.SCOPE_READ, scope_description="Read one's orders")
        write = cognito.ResourceServerScope(
            scope_name=c.SCOPE_WRITE, scope_description="Create and cancel orders"
        )
        act_as = cognito.ResourceServerScope(
            scope_name=c.SCOPE_ACT_AS,
            scope_description="Act for the customer named in the x-customer-id metadata (trusted backends)",
        )
        self.resource_server = self.user_pool.add_resource_server(
            "Orders", identifier=c.RESOURCE_SERVER_ID, scopes=[read, write, act_as]
        )
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"order-saga-{config.name}-{Aws.ACCOUNT_ID}"
            ),
        )

        def scopes(*granted: cognito.ResourceServerScope) -> list[cognito.OAuthScope]:
            return [cognito.OAuthScope.resource_server(self.resource_server, s) for s in granted]

        # The id "Client" is the one the machine client always had: deployed stacks keep its id and secret.
        self.service_client = self.user_pool.add_client(
            "Client",
            generate_secret=True,
            # No user sign-in through the API (the CDK still allows refreshing, which this
            # client, without refresh tokens, never does).
            auth_flows=cognito.AuthFlow(user_srp=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=scopes(read, write, act_as),
            ),
            access_token_validity=Duration.hours(1),
            prevent_user_existence_errors=True,
        )
        self.customer_client = self.user_pool.add_client(
            "CustomerClient",
            generate_secret=False,
            # Sign-in only through the hosted UI: no password, SRP or custom flow through the API,
            # and refresh at the token endpoint (rotation excludes REFRESH_TOKEN_AUTH).
            auth_flows=cognito.AuthFlow(user_srp=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[*scopes(read, write), cognito.OAuthScope.OPENID],
                callback_urls=list(customer_app.callback_urls),
                logout_urls=list(customer_app.logout_urls),
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            access_token_validity=CUSTOMER_ACCESS_TOKEN_VALIDITY,
            id_token_validity=CUSTOMER_ACCESS_TOKEN_VALIDITY,
            refresh_token_validity=CUSTOMER_REFRESH_TOKEN_VALIDITY,
            refresh_token_rotation_grace_period=REFRESH_TOKEN_ROTATION_GRACE,
            enable_token_revocation=True,
            prevent_user_existence_errors=True,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "Shoppers sign up themselves: MFA is optional (TOTP), not imposed on every customer; "
            "prod's threat protection watches every sign-in for leaked passwords and risk "
            "(docs/decisions.md).",
        )
        if not plus:
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG8",
                f"{config.name} has test sign-ins only: the Essentials plan; prod is on Plus with "
                "threat protection (docs/decisions.md).",
            )

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{Aws.REGION}.amazonaws.com/{self.user_pool.user_pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    @property
    def token_url(self) -> str:
        return f"{self.domain.base_url()}/oauth2/token"

    @property
    def authorize_url(self) -> str:
        """The hosted UI's authorization endpoint, where the customer app starts a sign-in."""
        return f"{self.domain.base_url()}/oauth2/authorize"


def user_pool_email(config: c.EnvironmentConfig, sender: str) -> cognito.UserPoolEmail:
    """prod mails sign-up and recovery codes through SES from the notifications' verified domain
    (Cognito's own mailer sends only a few a day); dev keeps Cognito's."""
    if config.name == "dev":
        return cognito.UserPoolEmail.with_cognito()
    return cognito.UserPoolEmail.with_ses(from_email=sender, ses_verified_domain=c.sender_domain(sender))
