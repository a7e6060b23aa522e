"""Shared test set-up: each test is marked with its tier, taken from its folder, and gets the
tier's time limit (fixture set-up included), longer than any wait a test of that tier gives
itself, so a slow run fails on the test's own message rather than on the limit."""

from pathlib import Path

import pytest

# Seconds per test, by tier: the e2e limit covers starting the tier's stack from nothing and the
# demo's full run; infra covers synthesizing the whole app.
TIER_TIMEOUTS = {"unit": 60, "integration": 300, "e2e": 1200, "infra": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        if tier in TIER_TIMEOUTS:
            item.add_marker(getattr(pytest.mark, tier))
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TIER_TIMEOUTS[tier]))
