"""The steps' stored procedures and the Python that calls them agree on names.

A procedure refuses with a SIGNAL whose message starts with an error class name; call_step maps
that name back to the typed error, so a name the mapping lacks would reach the state machine as
a raw database error its Catch does not match.
"""

import re
from typing import get_args

from order_saga.errors import BusinessError
from order_saga.migrate import MIGRATIONS_DIR
from order_saga.repository import REFUSALS, StepProcedure

MIGRATIONS = "\n".join(path.read_text(encoding="utf-8") for path in sorted(MIGRATIONS_DIR.glob("*.sql")))


def test_every_refusal_a_procedure_signals_is_a_typed_business_error() -> None:
    signalled = set(re.findall(r"SET v_message = CONCAT\('(\w+): ", MIGRATIONS))
    assert signalled == {"OrderNotFound", "OutOfStock", "StepAlreadyCompensated", "InvalidStateTransition",
                         "OrderCancelled"}  # fmt: skip
    assert signalled <= REFUSALS.keys()
    assert all(issubclass(error, BusinessError) for error in REFUSALS.values())


def test_every_procedure_the_steps_call_is_created_by_a_migration() -> None:
    created = set(re.findall(r"^CREATE PROCEDURE (\w+)\(", MIGRATIONS, re.MULTILINE))
    assert set(get_args(StepProcedure)) <= created
