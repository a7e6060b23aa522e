"""A small Lambda function for testing the local invoker itself (not one of the saga's)."""

import json
import os
import time
from pathlib import Path
from typing import Any


class PaymentDeclined(Exception):
    """Named like a saga error, to check that the errorType is the class name."""


def echo(event: Any, context: Any) -> dict[str, Any]:
    print("a line on stdout must not disturb the answer")
    return {
        "event": event,
        "setting": os.environ.get("FIXTURE_SETTING"),
        "server_only": os.environ.get("SERVER_ONLY_SETTING"),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def decline(event: Any, context: Any) -> None:
    raise PaymentDeclined(f"card declined for {event['order_id']}")


def record(event: Any, context: Any) -> dict[str, Any]:
    """Leave a trace of the call: the side effect a step would have."""
    marker = Path(event["marker"])
    with marker.open("a") as handle:
        handle.write(context.aws_request_id + "\n")
    return {"calls": len(marker.read_text().splitlines())}


def rendezvous(event: Any, context: Any) -> dict[str, Any]:
    """Leave a marker, then wait (at most `seconds`) for the other call's: met only when both run
    at the same time, whatever the machine's speed."""
    Path(event["mine"]).touch()
    deadline = time.monotonic() + event["seconds"]
    while not Path(event["theirs"]).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"met": Path(event["theirs"]).exists(), "pid": os.getpid()}


def unmarshalable(event: Any, context: Any) -> set[int]:
    return {1, 2}


def crash(event: Any, context: Any) -> None:
    os._exit(3)


def hold(event: Any, context: Any) -> dict[str, Any]:
    """Say it started, then keep its worker busy until the test releases it (`release` appears),
    at the most for `seconds` (60 unless told); answers with the worker's pid."""
    Path(event["started"]).touch()
    release = Path(event["release"])
    deadline = time.monotonic() + event.get("seconds", 60)
    while not release.exists():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"held and never released: {release} did not appear")
        time.sleep(0.01)
    return {"pid": os.getpid()}


def consume(event: Any, context: Any) -> dict[str, Any]:
    """An SQS consumer: notes each delivery (message id and receive count) in the body's marker,
    and reports a record as failed while its receive count is below the body's `fail_until`."""
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        receive_count = int(record["attributes"]["ApproximateReceiveCount"])
        with Path(body["marker"]).open("a") as handle:
            handle.write(f"{body['name']} {receive_count}\n")
        if receive_count < body.get("fail_until", 0):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
