"""Reading a request's parameters: each helper answers the contract's 400 for a missing or
invalid one, naming it in `param`."""

import json
import re
from typing import Any

from .errors import ParameterInvalid, ParameterMissing

CURRENCY = re.compile(r"[a-z]{3}")


def only(body: dict[str, Any], allowed: set[str]) -> None:
    """Refuse a parameter the endpoint does not take (a misspelt one would otherwise be ignored)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ParameterInvalid(f"unknown parameter: {unknown[0]}", param=unknown[0])


def required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise ParameterMissing(f"missing required parameter: {name}", param=name)
    return body[name]


def whole_number(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    """An integer within the bounds, given as a JSON number or (in a query string) as digits."""
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ParameterInvalid(f"{name} must be a whole number of at least {minimum}", param=name)
    if maximum is not None and value > maximum:
        raise ParameterInvalid(f"{name} must be at most {maximum}", param=name)
    return value


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParameterInvalid(f"{name} must be a non-empty string", param=name)
    return value


def currency(value: Any) -> str:
    if not isinstance(value, str) or not CURRENCY.fullmatch(value):
        raise ParameterInvalid("currency must be a lower-case ISO code such as eur", param="currency")
    return value


def metadata(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("metadata", {})
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ParameterInvalid("metadata must map names to strings", param="metadata")
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body: a JSON object (an empty body is `{}`)."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ParameterInvalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ParameterInvalid("the body must be a JSON object")
    return body
