"""The gateway's ledger per order: what its charges and refunds moved, read from its list endpoints.

A reconciliation lists the charges and refunds created in its window page by page (two listings,
whatever the number of orders) and groups them by order: a charge by its `metadata.order_id`, a
refund by the order of the charge it names (so a refund made outside the saga counts too).
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from ..payment_gateway import HttpGateway

# Listed from this long before the window opens: a gateway clock behind the database's must not
# hide a charge of an order created at the window's first instant (orders out of scope are dropped).
CLOCK_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class LedgerEntry:
    """What the gateway holds for one order: money moved, both ways."""

    charged: Decimal = Decimal(0)  # captured by succeeded charges
    refunded: Decimal = Decimal(0)  # by succeeded refunds of those charges
    reference: str | None = None  # the succeeded charge's id
    declined: bool = False  # a failed charge, and no succeeded one

    @property
    def net(self) -> Decimal:
        return self.charged - self.refunded


class GatewayLedger(Protocol):
    def entries(self, order_ids: Sequence[str], created_since: float | None) -> dict[str, LedgerEntry]:
        """The entry of every order the gateway knows among `order_ids` (others: nothing moved),
        from the objects created since `created_since` (Unix seconds; None: all)."""


def units(cents: int) -> Decimal:
    """An API amount (minor units) as the books keep it."""
    return Decimal(cents) / 100


class HttpLedger:
    """The ledger of any gateway that keeps docs/payment-gateway.md, read over HTTP."""

    def __init__(self, gateway: HttpGateway) -> None:
        self._gateway = gateway

    def entries(self, order_ids: Sequence[str], created_since: float | None) -> dict[str, LedgerEntry]:
        window = {}
        if created_since is not None:
            window["created[gte]"] = str(int(created_since) - CLOCK_MARGIN_SECONDS)
        wanted = set(order_ids)
        charges = [
            charge
            for charge in self._gateway.listed("/v1/charges", window)
            if charge.get("metadata", {}).get("order_id") in wanted
        ]
        return entries_of(charges, self._gateway.listed("/v1/refunds", window))


def entries_of(
    charges: Iterable[dict[str, Any]], refunds: Iterable[dict[str, Any]]
) -> dict[str, LedgerEntry]:
    """The charges of some orders and any refunds, grouped into one entry per order (oldest charge
    first, so `reference` is the first succeeded charge when, wrongly, there are several)."""
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    order_of: dict[str, str] = {}
    for charge in sorted(charges, key=lambda listed: listed.get("created", 0)):
        by_order[str(charge["metadata"]["order_id"])].append(charge)
        order_of[str(charge["id"])] = str(charge["metadata"]["order_id"])
    refunded: dict[str, int] = defaultdict(int)
    for refund in refunds:
        of_order = order_of.get(str(refund.get("charge")))
        if of_order is not None and refund.get("status") == "succeeded":
            refunded[of_order] += int(refund["amount"])
    found = {}
    for order_id, made in by_order.items():
        succeeded = [charge for charge in made if charge.get("status") == "succeeded"]
        found[order_id] = LedgerEntry(
            charged=units(sum(int(charge["amount"]) for charge in succeeded)),
            refunded=units(refunded[order_id]),
            reference=str(succeeded[0]["id"]) if succeeded else None,
            declined=not succeeded and any(charge.get("status") == "failed" for charge in made),
        )
    return found
