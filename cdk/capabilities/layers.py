"""The two Lambda layers: the shared `order_saga` package and its third-party dependencies.

The dependencies layer is built without Docker by `make layers` (pip --platform for arm64 and
Python 3.12, wheels only) into build/layers/deps; synthesis only packages what is there.
"""

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk import constants as c

PYTHON_JUNK = ["**/__pycache__", "**/*.pyc", "*.egg-info"]


class MissingBuild(RuntimeError):
    """A folder the deployment packages has not been built."""


def layer_code(root: Path, how: str) -> lambda_.Code:
    """The layer folder `root` (holding `python/`), refused with `how` when it was not built."""
    python = root / "python"
    if not python.is_dir() or not any(python.iterdir()):
        raise MissingBuild(f"{python} is missing or empty: {how}")
    return lambda_.Code.from_asset(str(root), exclude=PYTHON_JUNK)


class Layers(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.shared = self._layer(
            "Shared",
            "order_saga: settings, models, errors, db, cache, observability, migrations",
            layer_code(c.COMMON_LAYER_DIR, "the shared package belongs in layers/common/python"),
        )
        self.dependencies = self._layer(
            "Dependencies",
            "Third-party packages of the `lambda` extra, pinned by constraints.txt",
            layer_code(c.DEPS_LAYER_DIR, "run `make layers` to build it"),
        )

    def _layer(self, name: str, description: str, code: lambda_.Code) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            name,
            description=description,
            code=code,
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.shared, self.dependencies]
