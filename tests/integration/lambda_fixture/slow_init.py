"""A function whose init (the module import) lasts until the test releases it: INIT_STARTED is
touched when the import starts, and it ends when INIT_RELEASE appears (at the most after
INIT_HOLD_SECONDS), so the test decides that it outlasts the invocations' timeout."""

import os
import time
from pathlib import Path
from typing import Any

Path(os.environ["INIT_STARTED"]).touch()
_release = Path(os.environ["INIT_RELEASE"])
_deadline = time.monotonic() + float(os.environ["INIT_HOLD_SECONDS"])
while not _release.exists():
    if time.monotonic() >= _deadline:
        raise TimeoutError(f"the import was never released: {_release} did not appear")
    time.sleep(0.01)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"remaining_ms": context.get_remaining_time_in_millis()}
