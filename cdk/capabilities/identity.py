"""Cognito: the user pool that issues the edge's access tokens, a resource server with the
scopes `orders:read` and `orders:write`, and a machine client (client-credentials flow)."""

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge


class Identity(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: c.EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.DESTROY if config.name == "dev" else RemovalPolicy.RETAIN,
        )
        read = cognito.ResourceServerScope(scope_name=c.SCOPE_READ, scope_description="Read one's orders")
        write = cognito.ResourceServerScope(
            scope_name=c.SCOPE_WRITE, scope_description="Create and cancel orders"
        )
        self.resource_server = self.user_pool.add_resource_server(
            "Orders", identifier=c.RESOURCE_SERVER_ID, scopes=[read, write]
        )
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"order-saga-{config.name}-{Aws.ACCOUNT_ID}"
            ),
        )
        self.client = self.user_pool.add_client(
            "Client",
            generate_secret=True,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[cognito.OAuthScope.resource_server(self.resource_server, s) for s in (read, write)],
            ),
            access_token_validity=Duration.hours(1),
            prevent_user_existence_errors=True,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "The Essentials plan covers a client-credentials pool; Plus adds threat protection for "
            "interactive sign-ins, which this pool does not have.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG3",
            "Threat protection needs the Plus feature plan; callers here are machine clients using the "
            "client-credentials flow, which it does not cover.",
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
