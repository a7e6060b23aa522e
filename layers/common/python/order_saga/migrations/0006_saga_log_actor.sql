-- Who asked: the edge's saga_log entries (CreateOrder, CancelOrder) name the customer the request
-- acted for and the app client that sent it (the customer's own app, or a service acting for the
-- customer). The saga's own steps leave both empty. Columns added last, nullable and without a
-- default: MySQL 8 and MariaDB add them in place, without copying the table.
ALTER TABLE saga_log
  ADD COLUMN customer_id VARCHAR(128) NULL,
  ADD COLUMN client_id VARCHAR(128) NULL;
