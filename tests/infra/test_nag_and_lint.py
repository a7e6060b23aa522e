"""cdk-nag's AwsSolutions checks (a finding fails synthesis) and cfn-lint on every template."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from cdk import constants as c
from cdk.nag import acknowledge
from tests.support.synth import Synthesized, build_shipped_app

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# W3005: the CDK writes a DependsOn that a Ref already implies; harmless and not ours to change.
IGNORED_CHECKS = "W3005"


def test_the_whole_app_synthesizes_with_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # The fixture synthesized with AwsSolutionsChecks registered: a finding would have raised
    assert len(synthesized.templates) == 5


def test_a_finding_fails_the_synthesis_of_the_app_as_shipped(tmp_path: Path) -> None:
    # Given the app exactly as cdk/app.py builds it (its own nag registration, none of the test's),
    # with a queue that allows plain HTTP and has no DLQ added to one of its stacks
    app = build_shipped_app(tmp_path)
    stack = next(child for child in app.node.children if isinstance(child, Stack))
    sqs.Queue(stack, "InsecureQueue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    # When it is synthesized, Then cdk-nag stops it
    with pytest.raises(RuntimeError, match=r"AwsSolutions-SQS4"):
        app.synth()


def test_an_acknowledgement_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        acknowledge(Stack(App(), "S"), "AwsSolutions-SQS3", "  ")


def test_acknowledgements_go_through_the_helper_that_demands_a_reason() -> None:
    direct = [
        str(path)
        for path in (c.REPO_ROOT / "cdk").rglob("*.py")
        if path.name != "nag.py" and re.search(r"\.acknowledge\(", path.read_text())
    ]
    assert direct == []


def test_cfn_lint_finds_no_problem_in_any_template(synthesized: Synthesized) -> None:
    templates = sorted(str(p) for p in synthesized.directory.glob("*.template.json"))
    assert len(templates) == 5
    result = subprocess.run(
        [str(CFN_LINT), "--ignore-checks", IGNORED_CHECKS, "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
