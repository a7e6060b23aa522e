"""The VPC: private subnets for every workload, endpoints so AWS APIs stay off the internet,
and the security groups with the rules between them (the network's policy lives in one place)."""

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge

# Only what something in the VPC calls (each costs per AZ-hour, docs/deploy.md): the edge starts
# executions, functions, edge and rotation read secrets, functions send traces, the edge's tasks
# log and pull their image, and its collector writes to Managed Prometheus. SQS and CloudWatch
# metrics have none: Lambda polls the queue and Step Functions sends to it from outside the VPC,
# and metrics travel as EMF in the logs.
INTERFACE_ENDPOINTS = {
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Prometheus": ec2.InterfaceVpcEndpointAwsService.PROMETHEUS_WORKSPACES,
}


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: c.EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        flow_logs = logs.LogGroup(
            self, "FlowLogs", retention=config.log_retention, removal_policy=config.kept_removal
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=config.max_azs,
            # A NAT only for the internet proper (the payment gateway, SES's API); AWS APIs go
            # through the endpoints below.
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
            },
        )
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        endpoint_sg = self._group("Endpoints", "Interface endpoints: HTTPS from inside the VPC")
        endpoint_sg.add_ingress_rule(
            ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                security_groups=[endpoint_sg],
            )

        # The clients of the data stores; the stores' own groups admit them (cdk/capabilities/database.py).
        self.functions_sg = self._group("Functions", "The saga Lambda functions", egress=True)
        self.edge_sg = self._group("Edge", "The gRPC edge tasks", egress=True)
        acknowledge(
            endpoint_sg,
            "AwsSolutions-EC23",
            "The endpoints accept HTTPS from the VPC's own CIDR only (a token cdk-nag cannot resolve).",
        )

    def _group(self, name: str, description: str, *, egress: bool = False) -> ec2.SecurityGroup:
        return security_group(self, name, self.vpc, description, egress=egress)

    @property
    def clients(self) -> list[ec2.SecurityGroup]:
        """The groups whose members talk to MySQL and Redis."""
        return [self.functions_sg, self.edge_sg]


def security_group(
    scope: Construct, name: str, vpc: ec2.IVpc, description: str, *, egress: bool = False
) -> ec2.SecurityGroup:
    return ec2.SecurityGroup(scope, f"{name}Sg", vpc=vpc, description=description, allow_all_outbound=egress)
