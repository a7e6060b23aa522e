"""ElastiCache Redis: TLS in transit, encrypted at rest, AUTH token from Secrets Manager,
a replication group with automatic failover across AZs when the environment asks for it."""

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.network import Network, security_group
from cdk.nag import acknowledge


class Cache(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, network: Network, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = security_group(
            self, "Redis", network.vpc, "ElastiCache Redis: from the functions and the edge"
        )
        for client in network.clients:
            self.security_group.add_ingress_rule(client, ec2.Port.tcp(c.REDIS_PORT), "Redis over TLS")
        self.auth_secret = secretsmanager.Secret(
            self,
            "AuthToken",
            description="ElastiCache Redis AUTH token (REDIS_AUTH_SECRET_ARN)",
            # ElastiCache accepts 16-128 printable characters without @, " or /.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
            removal_policy=config.kept_removal,
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="order-saga Redis",
            subnet_ids=network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        replicated = config.cache_nodes > 1
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_description="order-saga availability cache, idempotency, status feed",
            engine="redis",
            engine_version="7.1",
            cache_node_type=config.cache_node_type,
            num_cache_clusters=config.cache_nodes,
            automatic_failover_enabled=replicated,
            multi_az_enabled=replicated,
            port=c.REDIS_PORT,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.security_group.security_group_id],
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            auth_token=self.auth_secret.secret_value.unsafe_unwrap(),  # a dynamic reference, not a value
            auto_minor_version_upgrade=True,
            snapshot_retention_limit=1 if config.name == "dev" else 7,
        )
        self.replication_group.apply_removal_policy(config.removal_policy)
        acknowledge(
            self.auth_secret,
            "AwsSolutions-SMG4",
            "An AUTH token rotates with ModifyReplicationGroup (AuthTokenUpdateStrategy ROTATE then SET), "
            "a runbook step in docs/deploy.md, not a Secrets Manager rotation Lambda.",
        )
        if not replicated:
            acknowledge(
                self.replication_group,
                "AwsSolutions-AEC4",
                "dev's Redis holds only a cache, idempotency keys and status feeds of test orders: losing "
                "the node costs a cold cache, never data, while a replica would double its cost. prod "
                "runs a multi-AZ replication group.",
            )

    @property
    def url(self) -> str:
        """REDIS_URL: TLS (`rediss://`) to the primary endpoint."""
        rg = self.replication_group
        return f"rediss://{rg.attr_primary_end_point_address}:{rg.attr_primary_end_point_port}/0"
