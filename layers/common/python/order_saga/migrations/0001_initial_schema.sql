-- The tables of the seed (orders, payments, inventory, saga_log) with what a real system needs,
-- plus order_items and inventory_reservations. Runs on MySQL 8.0 and MariaDB 10.11:
-- utf8mb4_bin (exact, case-sensitive ids) exists in both, unlike MySQL 8's utf8mb4_0900_* collations;
-- CHECK constraints are enforced by both (MySQL since 8.0.16, MariaDB since 10.2).

CREATE TABLE orders (
  order_id          CHAR(36)      NOT NULL,
  user_id           VARCHAR(128)  NOT NULL,
  idempotency_key   VARCHAR(128)  NOT NULL,
  request_hash      CHAR(64)      NOT NULL,
  total             DECIMAL(10,2) NOT NULL,
  currency          CHAR(3)       NOT NULL,
  email             VARCHAR(254)  NULL,
  payment_token     VARCHAR(255)  NOT NULL,
  status            ENUM('PENDING','CONFIRMED','FAILED','CANCELLING','CANCELLED','NEEDS_ATTENTION')
                                  NOT NULL DEFAULT 'PENDING',
  failure_reason    VARCHAR(500)  NULL,
  execution_arn     VARCHAR(2048) NULL,
  cancel_requested  BOOLEAN       NOT NULL DEFAULT FALSE,
  version           INT           NOT NULL DEFAULT 0,
  created_at        TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at        TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (order_id),
  UNIQUE KEY uq_orders_user_idempotency_key (user_id, idempotency_key),
  KEY ix_orders_user_created (user_id, created_at, order_id),
  KEY ix_orders_user_status_created (user_id, status, created_at, order_id),
  KEY ix_orders_status_created (status, created_at),
  CONSTRAINT ck_orders_total CHECK (total >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE order_items (
  order_id    CHAR(36)      NOT NULL,
  product_id  VARCHAR(36)   NOT NULL,
  quantity    INT           NOT NULL,
  unit_price  DECIMAL(10,2) NOT NULL,
  PRIMARY KEY (order_id, product_id),
  CONSTRAINT fk_order_items_order FOREIGN KEY (order_id) REFERENCES orders (order_id) ON DELETE CASCADE,
  CONSTRAINT ck_order_items_quantity CHECK (quantity > 0),
  CONSTRAINT ck_order_items_unit_price CHECK (unit_price >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE payments (
  payment_id         CHAR(36)      NOT NULL,
  order_id           CHAR(36)      NOT NULL,
  amount             DECIMAL(10,2) NOT NULL,
  currency           CHAR(3)       NOT NULL,
  status             ENUM('SUCCESS','FAILED','REFUNDED') NOT NULL,
  gateway_response   TEXT          NULL,
  gateway_reference  VARCHAR(128)  NULL,
  created_at         TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at         TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (payment_id),
  UNIQUE KEY uq_payments_order (order_id),
  CONSTRAINT fk_payments_order FOREIGN KEY (order_id) REFERENCES orders (order_id),
  CONSTRAINT ck_payments_amount CHECK (amount >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE inventory (
  product_id  VARCHAR(36)   NOT NULL,
  name        VARCHAR(200)  NOT NULL DEFAULT '',
  stock       INT           NOT NULL,
  reserved    INT           NOT NULL DEFAULT 0,
  unit_price  DECIMAL(10,2) NOT NULL,
  currency    CHAR(3)       NOT NULL,
  updated_at  TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (product_id),
  CONSTRAINT ck_inventory_reserved CHECK (reserved >= 0 AND reserved <= stock),
  CONSTRAINT ck_inventory_unit_price CHECK (unit_price >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE inventory_reservations (
  order_id    CHAR(36)     NOT NULL,
  product_id  VARCHAR(36)  NOT NULL,
  quantity    INT          NOT NULL,
  status      ENUM('RESERVED','RELEASED','COMMITTED') NOT NULL,
  created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (order_id, product_id),
  KEY ix_inventory_reservations_product (product_id),
  CONSTRAINT fk_inventory_reservations_order FOREIGN KEY (order_id) REFERENCES orders (order_id),
  CONSTRAINT fk_inventory_reservations_product FOREIGN KEY (product_id) REFERENCES inventory (product_id),
  CONSTRAINT ck_inventory_reservations_quantity CHECK (quantity >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE saga_log (
  id           BIGINT       NOT NULL AUTO_INCREMENT,
  saga_id      CHAR(36)     NOT NULL,
  step         VARCHAR(40)  NOT NULL,
  status       VARCHAR(20)  NOT NULL,
  detail       TEXT         NULL,
  `timestamp`  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY ix_saga_log_saga (saga_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
