"""RDS MySQL 8.4 behind RDS Proxy, with two logins in Secrets Manager, each rotated: the master
user (migrations only) and the application user (DML on the schema, created by the migration
function). Backed up by AWS Backup in prod."""

from aws_cdk import Duration, Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
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

ROTATE_EVERY = Duration.days(30)
ROTATION_SUBNETS = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
# The characters an RDS password may not hold (what `DatabaseSecret` excludes when it generates
# one): a rotation generates the next password with the same exclusions.
RDS_EXCLUDED_CHARACTERS = " %+~`#$&*()|[]{}:;<>?!'/@\"\\"


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
        # proxy -> instance on the database port: `add_proxy` below writes that rule (once per path).
        self.proxy_sg.add_egress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "Secrets Manager")
        # The major version only: RDS picks its default minor and upgrades it in the maintenance
        # window, and the template never names a minor an upgrade has left behind.
        engine = rds.DatabaseInstanceEngine.mysql(
            version=rds.MysqlEngineVersion.of(c.MYSQL_MAJOR_VERSION, c.MYSQL_MAJOR_VERSION)
        )
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            # TLS in transit from the proxy too, the schema's collation as the server default, and
            # the slow-query log the instance exports (to a file, the only output RDS publishes).
            parameters={
                "require_secure_transport": "ON",
                "character_set_server": "utf8mb4",
                "slow_query_log": "1",
                "long_query_time": "1",
                "log_output": "FILE",
            },
        )
        master = rds.DatabaseSecret(self, "MasterSecret", username=c.DATABASE_USER)
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.database_sg],
            port=c.DB_INSTANCE_PORT,
            credentials=rds.Credentials.from_secret(master),
            database_name=c.DATABASE_NAME,
            parameter_group=parameters,
            multi_az=config.db_multi_az,
            allocated_storage=config.db_allocated_storage_gb,
            max_allocated_storage=config.db_max_allocated_storage_gb,
            monitoring_interval=c.DB_MONITORING_INTERVAL,
            enable_performance_insights=config.db_performance_insights,
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
        acknowledge(
            self.instance,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonRDSEnhancedMonitoringRole]",
            "Enhanced Monitoring's own service-role policy: RDS writes the OS metrics to its log group.",
        )
        major_only = "RDS accepts the major version alone (docs/decisions.md); cfn-lint lists full versions."
        acknowledge(self.instance, "CloudFormation-Validate::E9006", major_only)
        cfn_instance = self.instance.node.default_child
        assert isinstance(cfn_instance, rds.CfnDBInstance)
        cfn_instance.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3691"]}})
        secret = self.instance.secret
        assert secret is not None  # generated above
        self.secret = secret  # the master user: migrations only
        # No secret rotates as it is created (the schedule's first run comes 30 days later): a
        # schedule without RotateImmediatelyOnUpdate rotates at once.
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=ROTATE_EVERY,
            vpc_subnets=ROTATION_SUBNETS,
            rotate_immediately_on_update=False,
        )
        # The application's login: the migration function creates it with DML-only grants, and
        # `rotate_application_user` schedules its rotation once that has run.
        app = rds.DatabaseSecret(
            self, "AppUserSecret", username=c.DATABASE_APP_USER, master_secret=self.secret
        )
        self.app_secret = app.attach(self.instance)
        # Its rotation function's group lives here, beside the instance it may reach: the rule
        # that lets it in is written in this stack, which the Saga stack depends on.
        self.app_rotation_sg = security_group(
            self, "AppUserRotation", vpc, "Rotation of the application user", egress=True
        )
        self.instance.connections.allow_default_port_from(
            self.app_rotation_sg, "Rotation of the application user"
        )
        acknowledge(
            app,
            "AwsSolutions-SMG4",
            "Rotated by the Saga stack's schedule (`rotate_application_user`), once its migration has "
            "created the user.",
        )
        for kept in (master, app):
            kept.apply_removal_policy(config.kept_removal)
        self.proxy = self.instance.add_proxy(
            "Proxy",
            db_proxy_name=f"{c.PROJECT}-{config.name}",  # unique per account and region
            secrets=[self.secret, self.app_secret],
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.proxy_sg],
            require_tls=True,
            # MySQL 8.4 creates users with caching_sha2_password; the proxy logs clients in with
            # the same scheme (docs/decisions.md).
            client_password_auth_type=rds.ClientPasswordAuthType.MYSQL_CACHING_SHA2_PASSWORD,
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
        if config.name == "prod":
            self._backup_plan(config)
        if not config.db_multi_az:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS3",
                "dev's database holds test orders only: an AZ outage costs a redeploy, never customer "
                "data, while a standby would double the instance cost. prod is multi-AZ.",
            )
        if not config.deletion_protection:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS10",
                "Deletion protection is on in prod; dev stacks must be destroyable by `make destroy`.",
            )

    def rotate_application_user(
        self, scope: Construct, *, after: Construct
    ) -> secretsmanager.RotationSchedule:
        """The application user's rotation schedule (the multi-user scheme: it alternates with a
        clone the master's secret creates), built in `scope` and only `after` what creates the user.

        Even a schedule that waits tests itself when it is created (Secrets Manager runs the
        rotation function's testSecret step), and that step logs in as a user the Data stack
        cannot have created: the migration in the Saga stack creates it. A hosted rotation, since
        its schedule and its function are then both written in `scope`, not beside the secret.
        """
        schedule = secretsmanager.RotationSchedule(
            scope,
            "AppUserRotation",
            secret=self.app_secret,
            hosted_rotation=secretsmanager.HostedRotation.mysql_multi_user(
                master_secret=self.secret,
                vpc=self.instance.vpc,
                vpc_subnets=ROTATION_SUBNETS,
                security_groups=[self.app_rotation_sg],
                exclude_characters=RDS_EXCLUDED_CHARACTERS,
            ),
            automatically_after=ROTATE_EVERY,
            rotate_immediately_on_update=False,
        )
        schedule.node.add_dependency(after)
        return schedule

    def _backup_plan(self, config: c.EnvironmentConfig) -> None:
        """Daily backups kept 35 days and monthly ones kept a year, besides RDS's own window."""
        plan = backup.BackupPlan(
            self,
            "Backup",
            backup_vault=backup.BackupVault(
                self,
                "Vault",
                # Kept in prod, so named after the stack instance, never fixed.
                backup_vault_name=f"{c.PROJECT}-{c.stack_instance_id()}",
                removal_policy=config.kept_removal,
            ),
            backup_plan_rules=[
                backup.BackupPlanRule(
                    rule_name="Daily",
                    schedule_expression=events.Schedule.cron(hour="3", minute="0"),
                    delete_after=Duration.days(35),
                ),
                backup.BackupPlanRule(
                    rule_name="Monthly",
                    schedule_expression=events.Schedule.cron(day="1", hour="4", minute="0"),
                    delete_after=Duration.days(365),
                ),
            ],
        )
        selection = plan.add_selection(
            "Instance", resources=[backup.BackupResource.from_rds_database_instance(self.instance)]
        )
        acknowledge(
            selection,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSBackupServiceRolePolicyForBackup]",
            "AWS Backup's own service-role policy: the snapshot, copy and tag actions it performs on "
            "RDS, kept current by AWS as the service changes.",
        )
