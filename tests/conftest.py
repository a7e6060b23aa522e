"""Shared test set-up: each test is marked with its tier, taken from its folder."""

from pathlib import Path

import pytest

TIERS = ("unit", "integration", "e2e", "infra")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
