"""AWS clients, created on first use and kept across warm invocations (never at import time)."""

from functools import lru_cache
from typing import Any

import boto3


@lru_cache(maxsize=1)
def get_ses() -> Any:
    return boto3.client("ses")
