-- Closing the saga's holes under compound faults:
-- * payments.status CHARGING: the intent, committed with the gateway idempotency key BEFORE the
--   gateway is called, so a compensation never concludes "nothing charged" from a missing row;
-- * orders.reason_code: the stable, machine-readable code beside the customer-friendly
--   failure_reason (operators' detail stays in saga_log and the DLQ);
-- * orders.owed_compensations: what a NEEDS_ATTENTION order still owes, in MySQL (not only in a
--   DLQ message, which a local moto restart loses);
-- * orders.cancellation_execution_arn: the cancellation machine's execution, so "already
--   started" is decided from its status and a stranded CANCELLING order can be found.
-- widens: payments.status (CHARGING added; every earlier value stays)
ALTER TABLE payments
  MODIFY status ENUM('CHARGING','SUCCESS','FAILED','REFUNDED') NOT NULL,
  ADD COLUMN idempotency_key VARCHAR(128) NULL AFTER currency;

ALTER TABLE orders
  ADD COLUMN reason_code VARCHAR(40) NULL AFTER failure_reason,
  ADD COLUMN owed_compensations SET('RefundPayment','ReleaseStock') NOT NULL DEFAULT '' AFTER reason_code,
  ADD COLUMN cancellation_execution_arn VARCHAR(2048) NULL AFTER execution_arn;
