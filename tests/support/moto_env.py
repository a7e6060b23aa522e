"""moto in the test's own process: the environment boto3 needs to talk to it, not to AWS."""

import pytest

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_in_process_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials moto accepts and a region, and no endpoint URL: a stack this checkout runs
    would otherwise answer instead of `mock_aws`."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
