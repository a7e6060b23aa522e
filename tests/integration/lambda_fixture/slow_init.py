"""A function whose init (the module import) takes longer than its invocations' timeout."""

import time
from typing import Any

time.sleep(1.5)  # a heavy import on a slow machine


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"remaining_ms": context.get_remaining_time_in_millis()}
