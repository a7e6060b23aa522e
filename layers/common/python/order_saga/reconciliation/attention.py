"""Records, left for a person, of what a NEEDS_ATTENTION order still owes; MySQL holds one of them."""

from dataclasses import dataclass
from typing import Protocol

from ..db import Database


@dataclass(frozen=True)
class AttentionRecord:
    """A record that an order still owes something.

    `owed` names what it owes: compensation step names, or `notice:<KIND>` for an e-mail not
    delivered. None when the record does not say: a compensation DLQ message says only that the
    compensation failed, so it stands for every compensation (not for a notice)."""

    order_id: str
    source: str
    owed: tuple[str, ...] | None = None

    @property
    def names_compensations(self) -> bool:
        return self.owed is not None and not all(what.startswith("notice:") for what in self.owed)

    def covers(self, what: str) -> bool:
        if self.owed is None:
            return not what.startswith("notice:")
        return what in self.owed


class AttentionSource(Protocol):
    def records(self) -> list[AttentionRecord]: ...


class OwedInMySql:
    """The attention record in MySQL: `orders.owed_compensations` of NEEDS_ATTENTION orders."""

    name = "mysql"

    def __init__(self, database: Database) -> None:
        self._database = database

    def records(self) -> list[AttentionRecord]:
        with self._database.transaction() as cursor:
            cursor.execute(
                "SELECT order_id, owed_compensations FROM orders"
                " WHERE status = 'NEEDS_ATTENTION' AND owed_compensations <> ''"
            )
            rows = cursor.fetchall()
        return [
            AttentionRecord(
                row["order_id"],
                self.name,
                tuple(sorted(filter(None, str(row["owed_compensations"]).split(",")))),
            )
            for row in rows
        ]
