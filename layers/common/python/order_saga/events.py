"""A Lambda event read into the pydantic model of what the function takes, or one clear error.

Its own module, apart from lambda_step, so that a function that parses its event but has no
saga step to wrap (notification, reconciliation) does not import the steps' Redis fast path.
"""

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidOrder

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse(model: type[ModelT], event: Any) -> ModelT:
    """The event as `model`; an invalid one is an InvalidOrder naming every bad field."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidOrder(f"invalid {model.__name__}: {problems}") from None
