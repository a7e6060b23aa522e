"""The reconciler's pass, in the edge process: start orphaned sagas, then run the saga watchdog.

1. An order stored PENDING whose StartExecution never happened (the edge died in between, or Step
   Functions refused the call) is found after a grace period and started. Several edge tasks may
   reconcile at once: the execution name is the order_id, so an order is started at most once.
2. Every order an execution may have left behind (PENDING or CANCELLING whose execution closed or
   never started, FAILED or CANCELLED still holding money or stock), untouched for the watchdog's
   grace period, is handed to the saga watchdog (order_saga.watchdog), which starts a saga that
   never started and ends every other order truthfully or flags it NEEDS_ATTENTION. This pass is
   how the watchdog runs locally (moto emits no events); in AWS, EventBridge invokes the
   SagaWatchdog function for every execution that fails, times out or is aborted, and the edge
   runs no watchdog (WATCHDOG_GRACE_SECONDS=0, the default).
"""

import threading
from dataclasses import dataclass

from order_saga.observability import logger
from order_saga.order_service import OrderService
from order_saga.watchdog import SagaWatchdog, WatchdogOutcome

from .saga_metrics import RepairCounter


@dataclass(frozen=True)
class Pass:
    started: list[str]
    settled: list[WatchdogOutcome]


class Reconciler:
    def __init__(
        self,
        orders: OrderService,
        watchdog: SagaWatchdog | None,
        *,
        interval_seconds: float,
        grace_seconds: float,
        watchdog_grace_seconds: float,
        repairs: RepairCounter | None = None,
    ) -> None:
        self.orders = orders
        self.watchdog = watchdog
        self.repairs = repairs
        self.interval_seconds = interval_seconds
        self.grace_seconds = grace_seconds
        self.watchdog_grace_seconds = watchdog_grace_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def run_once(self) -> Pass:
        started = self.orders.start_orphans(self.grace_seconds)
        if started:
            logger.info("orphaned orders started", extra={"order_ids": started})
            if self.repairs is not None:
                self.repairs.record("reconciler", "started_saga", len(started))
        outcomes = self.watchdog.settle_stuck(self.watchdog_grace_seconds) if self.watchdog else []
        settled = [outcome for outcome in outcomes if outcome.action != "none"]
        for outcome in settled:
            logger.info("order settled by the watchdog", extra=outcome.model_dump(mode="json"))
            if self.repairs is not None:
                self.repairs.record("watchdog", outcome.action, 1)
        return Pass(started, settled)

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
