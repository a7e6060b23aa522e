"""The database's storage and the sender's reputation are watched: storage autoscaling, Enhanced
Monitoring and Performance Insights on the instance; free storage and SES bounce and complaint
rates alarmed."""

from typing import Any

from cdk import constants as c
from tests.support.synth import Synthesized


def observability_alarms(synth: Synthesized) -> list[dict[str, Any]]:
    return list(synth.resources("Observability", "AWS::CloudWatch::Alarm").values())


def test_the_database_grows_its_storage_and_is_watched(synthesized: Synthesized) -> None:
    config = c.environment_config(synthesized.env)
    (db,) = synthesized.resources("Data", "AWS::RDS::DBInstance").values()
    props = db["Properties"]
    assert (
        int(props["MaxAllocatedStorage"])
        == config.db_max_allocated_storage_gb
        > config.db_allocated_storage_gb
    )
    assert props["MonitoringInterval"] == 60  # Enhanced Monitoring
    assert "MonitoringRoleArn" in props
    # Performance Insights where the instance class offers it (prod's m7g, not dev's t4g.micro)
    assert props.get("EnablePerformanceInsights", False) is config.db_performance_insights
    alarms = {a["Properties"].get("MetricName"): a["Properties"] for a in observability_alarms(synthesized)}
    free = alarms["FreeStorageSpace"]
    assert free["ComparisonOperator"] == "LessThanThreshold"
    assert free["Threshold"] == config.db_allocated_storage_gb * 1024**3 / 10


def test_ses_bounce_and_complaint_rates_page_before_ses_reviews_the_account(synthesized: Synthesized) -> None:
    alarms = {a["Properties"].get("MetricName"): a["Properties"] for a in observability_alarms(synthesized)}
    bounce, complaint = alarms["Reputation.BounceRate"], alarms["Reputation.ComplaintRate"]
    assert (bounce["Namespace"], complaint["Namespace"]) == ("AWS/SES", "AWS/SES")
    assert 0 < bounce["Threshold"] < 0.05  # SES reviews at 5%
    assert 0 < complaint["Threshold"] < 0.001  # and at 0.1% of complaints
    assert bounce["ComparisonOperator"] == complaint["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
