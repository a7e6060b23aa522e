"""The list endpoints: newest first, filtered, in pages joined by `starting_after`."""

import sqlite3
from collections.abc import Callable
from typing import Any

from . import params
from .ledger import find

# The column each equality filter compares; a list takes the ones it names.
EQUALITY_FILTERS = {"metadata[order_id]": "json_extract(metadata, '$.order_id')", "charge": "charge"}
RANGE_FILTERS = {"created[gte]": "created >= ?", "created[lt]": "created < ?"}
DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def list_objects(
    db: sqlite3.Connection,
    table: str,
    query: dict[str, str],
    to_object: Callable[[sqlite3.Row], dict[str, Any]],
    filters: tuple[str, ...],
) -> dict[str, Any]:
    """One page of `table`'s rows (the charges or the refunds) as a list object."""
    params.only(query, {*filters, *RANGE_FILTERS, "limit", "starting_after"})
    conditions = [f"{EQUALITY_FILTERS[name]} = ?" for name in filters if name in query]
    values: list[object] = [query[name] for name in filters if name in query]
    for name, condition in RANGE_FILTERS.items():
        if name in query:
            conditions.append(condition)
            values.append(params.whole_number(query[name], name, minimum=0))
    if "starting_after" in query:
        conditions.append("seq < ?")
        values.append(find(db, table, query["starting_after"], param="starting_after")["seq"])
    limit = params.whole_number(query.get("limit", DEFAULT_LIMIT), "limit", minimum=1, maximum=MAX_LIMIT)
    where = " AND ".join(conditions) or "1"
    rows = db.execute(
        f"SELECT * FROM {table} WHERE {where} ORDER BY seq DESC LIMIT ?",  # noqa: S608 - fixed strings; values are parameters
        (*values, limit + 1),
    ).fetchall()
    return {"object": "list", "data": [to_object(row) for row in rows[:limit]], "has_more": len(rows) > limit}
