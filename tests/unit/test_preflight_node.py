"""The Node.js releases the preflight accepts, read from the jsii runtime's release table."""

import datetime

from cdk.preflight import NodeRelease, node_problems, node_releases

TABLE = (
    'new NodeRelease(19,{endOfLife:new Date("2023-06-01"),untested:!0}),'
    'new NodeRelease(18,{endOfLife:new Date("2025-04-30"),endOfJsiiSupport:new Date("2025-11-30")}),'
    'new NodeRelease(20,{endOfLife:new Date("2026-04-30")}),'
    'new NodeRelease(22,{endOfLife:new Date("2027-04-30")})'
)


def test_a_release_is_supported_until_its_own_date_or_six_months_past_its_end_of_life() -> None:
    assert node_releases(TABLE) == {
        19: NodeRelease(19, None),
        18: NodeRelease(18, datetime.date(2025, 11, 30)),
        20: NodeRelease(20, datetime.date(2026, 10, 30)),
        22: NodeRelease(22, datetime.date(2027, 10, 30)),
    }


def test_node_is_checked_against_the_day() -> None:
    releases = node_releases(TABLE)
    assert node_problems("v20.1.0", releases, datetime.date(2026, 10, 29)) == []
    [late] = node_problems("v20.1.0", releases, datetime.date(2026, 10, 30))
    assert late.endswith("install Node.js 22")
    assert node_problems("v19.0.0", releases, datetime.date(2023, 1, 1))  # never tested
    [missing] = node_problems(None, releases, datetime.date(2026, 1, 1))
    assert missing.startswith("no Node.js (`node`) on the PATH")
