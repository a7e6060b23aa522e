"""RDS MySQL 8.0 behind RDS Proxy, with generated credentials in Secrets Manager, rotated."""

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.network import Network, security_group
from cdk.nag import acknowledge

BASIC_EXECUTION = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
LOG_RETENTION_ACKS = {
    f"AwsSolutions-IAM4[Policy::{BASIC_EXECUTION}]": (
        "CDK's log-retention helper writes only its own logs with the basic execution policy."
    ),
    "AwsSolutions-IAM5[Resource::*]": (
        "CDK's log-retention helper sets retention on log groups RDS creates at run time, named by RDS."
    ),
}


class Database(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, network: Network, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        vpc = network.vpc
        self.proxy_sg = security_group(self, "Proxy", vpc, "RDS Proxy: MySQL from the functions and the edge")
        self.database_sg = security_group(
            self, "Instance", vpc, "RDS MySQL: only from the proxy and rotation"
        )
        for client in network.clients:
            self.proxy_sg.add_ingress_rule(client, ec2.Port.tcp(c.MYSQL_PORT), "MySQL through the proxy")
        self.proxy_sg.add_egress_rule(self.database_sg, ec2.Port.tcp(c.DB_INSTANCE_PORT), "To the instance")
        self.proxy_sg.add_egress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "Secrets Manager")
        engine = rds.DatabaseInstanceEngine.mysql(version=rds.MysqlEngineVersion.VER_8_0_45)
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            # TLS in transit from the proxy too, and the schema's collation as the server default.
            parameters={"require_secure_transport": "ON", "character_set_server": "utf8mb4"},
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.database_sg],
            port=c.DB_INSTANCE_PORT,
            credentials=rds.Credentials.from_generated_secret(c.DATABASE_USER),
            database_name=c.DATABASE_NAME,
            parameter_group=parameters,
            multi_az=config.db_multi_az,
            allocated_storage=config.db_allocated_storage_gb,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            backup_retention=Duration.days(config.db_backup_days),
            deletion_protection=config.deletion_protection,
            removal_policy=config.removal_policy,
            auto_minor_version_upgrade=True,
            iam_authentication=True,
            cloudwatch_logs_exports=["error", "slowquery"],
            cloudwatch_logs_retention=config.log_retention,
        )
        secret = self.instance.secret
        assert secret is not None  # generated above
        self.secret = secret
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=Duration.days(30),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        self.proxy = self.instance.add_proxy(
            "Proxy",
            secrets=[self.secret],
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.proxy_sg],
            require_tls=True,
        )
        acknowledge(
            self.proxy,
            "CloudFormation-Validate::F3002",
            "The Tags the CDK writes on the proxy's target group are accepted by CloudFormation.",
        )
        # RDS log exports with a retention come with CDK's log-retention helper function.
        retention = Stack.of(self).node.try_find_child("LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a")
        if retention is not None:
            for rule, why in LOG_RETENTION_ACKS.items():
                acknowledge(retention, rule, why)
        if not config.db_multi_az:
            acknowledge(self.instance, "AwsSolutions-RDS3", "dev runs one AZ to save cost; prod is multi-AZ.")
        if not config.deletion_protection:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS10",
                "Deletion protection is on in prod; dev stacks must be destroyable by `make destroy`.",
            )
