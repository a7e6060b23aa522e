"""`cdk synth` and `cdk deploy` straight from the repository root build the Lambda layers first."""

import json
import shlex
import subprocess

from cdk import constants as c


def test_the_cdk_build_step_builds_the_dependencies_layer_synthesis_packages() -> None:
    # Given the build command the CDK command line runs before it synthesizes
    build = shlex.split(json.loads((c.REPO_ROOT / "cdk.json").read_text())["build"])
    # When make only says what it would do (every step, as on a fresh checkout)
    assert build[:2] == ["make", "layers"]
    plan = subprocess.run(
        [*build, "--dry-run", "--always-make"], cwd=c.REPO_ROOT, capture_output=True, text=True, check=True
    )
    # Then it installs the dependencies into the folder the layer construct packages
    target = c.DEPS_LAYER_DIR.relative_to(c.REPO_ROOT)
    assert f"--target {target}/python" in plan.stdout
