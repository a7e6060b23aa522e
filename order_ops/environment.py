"""The environment the operator tools work on: `ORDER_SAGA_ENVIRONMENT` (`local` by default), its
resources found by their manifest names, locally and in AWS alike."""

from typing import Any

from order_saga import manifest


def queue_url(sqs: Any, queue: manifest.Queue, environment: str | None = None) -> str:
    """The environment's queue, found by its deployed name; a queue prod retains carries its
    stack's UUID after that name."""
    name = manifest.resource_name(environment or manifest.deployment_environment(), queue.name)
    for url in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", []):
        found = url.rsplit("/", 1)[-1]
        if found == name or found.startswith(f"{name}-"):
            return str(url)
    raise KeyError(f"no queue {name}: is the environment deployed (or the local stack up)?")
