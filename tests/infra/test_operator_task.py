"""The operator tools' way into the VPC: a one-off Fargate task that runs `order-ops` from the
edge's image, with a role of its own (docs/deploy.md's runbook runs it)."""

import tomllib
from typing import Any

from cdk import constants as c
from order_saga.manifest import Setting
from tests.support.synth import Synthesized, dump, role_policy


def operator_task(synth: Synthesized) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = [
        resource["Properties"]
        for resource in synth.resources("Saga", "AWS::ECS::TaskDefinition").values()
        if resource["Properties"]["ContainerDefinitions"][0]["Name"] == "Operator"
    ]
    [task] = tasks
    return task


def test_the_operator_task_runs_the_operator_tools_on_the_environment(synthesized: Synthesized) -> None:
    [container] = operator_task(synthesized)["ContainerDefinitions"]
    assert container["EntryPoint"] == ["order-ops"]
    settings = {variable["Name"]: variable["Value"] for variable in container["Environment"]}
    assert settings[Setting.DEPLOYMENT_ENVIRONMENT] == synthesized.env
    assert {
        Setting.MYSQL_SECRET_ARN,
        Setting.MYSQL_HOST,
        Setting.REDIS_URL,
        Setting.COMPENSATION_DLQ_URL,
    } <= set(settings)
    # and the runbook's `aws ecs run-task` finds its cluster, family, subnets and group in outputs
    outputs = {*synthesized.template("Saga")["Outputs"], *synthesized.template("Network")["Outputs"]}
    for output in ("ClusterName", "TaskFamily", "OperatorSubnetIds", "OperatorSecurityGroupId"):
        assert any(output in name for name in outputs), (output, outputs)


def test_the_operator_role_redrives_and_reads_what_the_tools_need(synthesized: Synthesized) -> None:
    role = operator_task(synthesized)["TaskRoleArn"]["Fn::GetAtt"][0]
    document = dump(role_policy(synthesized, role))
    needed = ["lambda:InvokeFunction", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"]
    needed += ["states:DescribeExecution", "states:ListExecutions", "secretsmanager:GetSecretValue"]
    for action in needed:
        assert action in document, action
    assert "MarkOrderCancelled" in document  # what a re-drive invokes, and nothing else
    assert "ProcessPayment" not in document
    assert "DatabaseAppUserSecret" in document  # the application login, never the master
    assert "MasterSecret" not in document


def test_the_edge_image_carries_the_operator_tools() -> None:
    dockerfile = (c.REPO_ROOT / c.EDGE_DOCKERFILE).read_text()
    assert "COPY order_ops order_ops" in dockerfile
    assert ",ops]'" in dockerfile
    project = tomllib.loads((c.REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["order-ops"] == "order_ops.cli:main"
