"""How an operator command fails: an expected failure (bad input, an environment that does not
answer) is one line on stderr and exit 1, never a stack trace."""

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from order_saga.errors import OrderSagaError

EXPECTED = (OrderSagaError, ClientError, BotoCoreError, KeyError)


def reporting(*expected: type[Exception]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator reporting these failures (besides the operator tools' own) as one line."""
    caught: tuple[type[Exception], ...] = (*EXPECTED, *expected)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except caught as exc:
                hint = ""
                if isinstance(exc, BotoCoreError):
                    hint = (
                        " (is the local AWS stack up? order-saga aws up)"
                        if os.environ.get("AWS_ENDPOINT_URL")
                        else " (no local AWS stack: order-saga aws up; for AWS, configure a region)"
                    )
                click.echo(f"error: {exc}{hint}", err=True)
                sys.exit(1)

        return wrapper

    return decorate


reported = reporting()
