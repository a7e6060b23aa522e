"""Synthesis refuses what it cannot deploy, saying what to do."""

from pathlib import Path

import pytest
from aws_cdk import App, Stack

from cdk import constants as c
from cdk.capabilities.layers import MissingBuild, layer_code
from cdk.capabilities.workflow import UnknownSubstitution, Workflow, WorkflowTargets


def test_a_placeholder_the_deployment_does_not_provide_fails_synthesis(tmp_path: Path) -> None:
    # Given a definition that names a function nobody deploys
    definition = tmp_path / "x.asl.json"
    definition.write_text(
        '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${NopeFunctionArn}"}}}'
    )
    # When it is turned into a state machine, Then synthesis stops, naming the placeholder
    with pytest.raises(UnknownSubstitution, match=r"\$\{NopeFunctionArn\}"):
        Workflow(
            Stack(App(), "S"),
            "X",
            definition=definition,
            targets=WorkflowTargets(functions={}, queues={}),
            config=c.environment_config("dev"),
        )


def test_an_unbuilt_layer_names_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(MissingBuild, match="run `make layers`"):
        layer_code(tmp_path, "run `make layers` to build it")


def test_an_unknown_environment_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="choose one of dev, prod"):
        c.environment_config("staging")
