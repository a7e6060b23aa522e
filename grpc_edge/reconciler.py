"""Starts the sagas of orphaned PENDING orders (design §5), in the edge process.

An order stored PENDING whose StartExecution never happened (the edge died in between, or Step
Functions refused the call) is found after a grace period and started. Several edge tasks may
reconcile at once: the execution name is the order_id, so an order is started at most once.
"""

import threading

from order_saga.observability import logger
from order_saga.order_service import OrderService

from .saga_metrics import RepairCounter


class Reconciler:
    def __init__(
        self,
        orders: OrderService,
        *,
        interval_seconds: float,
        grace_seconds: float,
        repairs: RepairCounter | None = None,
    ) -> None:
        self.orders = orders
        self.repairs = repairs
        self.interval_seconds = interval_seconds
        self.grace_seconds = grace_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def run_once(self) -> list[str]:
        started = self.orders.start_orphans(self.grace_seconds)
        if started:
            logger.info("orphaned orders started", extra={"order_ids": started})
            if self.repairs is not None:
                self.repairs.record("reconciler", "started_saga", len(started))
        return started

    def start(self) -> None:
        if self.interval_seconds > 0:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.run_once()
            except Exception:  # a failed pass is logged; the next one tries again
                logger.exception("reconciler pass failed")
