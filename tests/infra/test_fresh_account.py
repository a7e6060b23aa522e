"""What a fresh account would refuse, or what would break on the first deploy, asserted on the
synthesized templates of dev and prod."""

import json
from typing import Any

from tests.support.synth import Synthesized

RULE_KINDS = {"AWS::EC2::SecurityGroupIngress": "ingress", "AWS::EC2::SecurityGroupEgress": "egress"}
# What makes two rules the same rule for EC2 (the description does not).
RULE_KEYS = ("IpProtocol", "FromPort", "ToPort", "CidrIp", "CidrIpv6", "SourceSecurityGroupId",
             "DestinationSecurityGroupId", "SourcePrefixListId", "DestinationPrefixListId")  # fmt: skip


def resolved(value: Any, resources: dict[str, Any]) -> Any:
    """A port as EC2 sees it: an instance's `Endpoint.Port` is the port the instance is given."""
    if isinstance(value, dict) and value.get("Fn::GetAtt", [None, None])[1] == "Endpoint.Port":
        return int(resources[value["Fn::GetAtt"][0]]["Properties"]["Port"])
    return value


def security_group_rules(synth: Synthesized) -> list[tuple[str, str]]:
    """Every rule of every template as (direction, canonical JSON): the separate rule resources
    and the rules written inside a security group."""
    rules = []
    for template in synth.templates.values():
        for logical_id, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] in RULE_KINDS:
                rules.append((RULE_KINDS[resource["Type"]], props["GroupId"], props))
            elif resource["Type"] == "AWS::EC2::SecurityGroup":
                group: Any = {"Fn::GetAtt": [logical_id, "GroupId"]}
                rules += [("ingress", group, rule) for rule in props.get("SecurityGroupIngress", [])]
                rules += [("egress", group, rule) for rule in props.get("SecurityGroupEgress", [])]
    every = {lid: r for template in synth.templates.values() for lid, r in template["Resources"].items()}
    return [
        (direction, json.dumps([group, {k: resolved(rule.get(k), every) for k in RULE_KEYS}], sort_keys=True))
        for direction, group, rule in rules
    ]


def test_no_two_security_group_rules_are_the_same(synthesized: Synthesized) -> None:
    rules = security_group_rules(synthesized)
    assert rules
    duplicates = sorted({rule for rule in rules if rules.count(rule) > 1})
    assert duplicates == []


def test_the_proxy_still_reaches_the_instance(synthesized: Synthesized) -> None:
    # (one rule per path: the one `add_proxy` writes)
    data = synthesized.resources("Data", "AWS::EC2::SecurityGroupEgress")
    to_instance = [
        r
        for r in data.values()
        if "Instance" in json.dumps(r["Properties"].get("DestinationSecurityGroupId"))
    ]
    assert len(to_instance) == 1


def test_no_secret_rotates_as_it_is_created(synthesized: Synthesized) -> None:
    schedules = [
        resource["Properties"]
        for template in synthesized.templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::SecretsManager::RotationSchedule"
    ]
    assert schedules
    assert [schedule.get("RotateImmediatelyOnUpdate") for schedule in schedules] == [False] * len(schedules)


def depends_on(template: dict[str, Any], logical_id: str) -> set[str]:
    """Every resource `logical_id` waits for, directly or through what it waits for."""
    found: set[str] = set()
    pending = [logical_id]
    while pending:
        resource = template["Resources"][pending.pop()]
        direct = resource.get("DependsOn", [])
        for needed in [direct] if isinstance(direct, str) else direct:
            if needed not in found:
                found.add(needed)
                pending.append(needed)
    return found


def test_the_application_user_rotates_only_once_the_migration_created_it(synthesized: Synthesized) -> None:
    # The schedule tests itself as it is created (testSecret logs in as the user): it must come
    # after the trigger that runs the migration, which creates the user, in the same stack.
    saga = synthesized.template("Saga")
    [trigger] = synthesized.resources("Saga", "Custom::Trigger")
    schedules = synthesized.resources("Saga", "AWS::SecretsManager::RotationSchedule")
    [(schedule_id, schedule)] = [
        (k, v) for k, v in schedules.items() if "AppUserSecret" in json.dumps(v["Properties"]["SecretId"])
    ]
    assert schedule["Properties"]["HostedRotationLambda"]["RotationType"] == "MySQLMultiUser"
    assert trigger in depends_on(saga, schedule_id)
    data = synthesized.resources("Data", "AWS::SecretsManager::RotationSchedule").values()
    assert ["AppUserSecret" in json.dumps(s["Properties"]["SecretId"]) for s in data] == [False]
