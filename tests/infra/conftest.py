"""The infra tier synthesizes the whole app once per environment, in-process: no Docker, no
network, no AWS credentials."""

import pytest

from tests.support.synth import ENVIRONMENTS, Synthesized, synthesize


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def synthesized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(request.param, tmp_path_factory.mktemp(f"cdk-{request.param}"))
