"""Loading a function's handler from its definition, as the Lambda runtime does, for tests."""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from order_saga.functions import FunctionSpec


@dataclass(frozen=True)
class Context:
    """The fields of the Lambda context object that our handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def load_handler(spec: FunctionSpec) -> Callable[[Any, Context], Any]:
    module_name, function_name = spec.handler.rsplit(".", 1)
    module = importlib.import_module(f"functions.{spec.service}.{module_name}")
    handler: Callable[[Any, Context], Any] = getattr(module, function_name)
    return handler


def invoke(spec: FunctionSpec, event: Any) -> Any:
    return load_handler(spec)(event, Context(spec.name))
