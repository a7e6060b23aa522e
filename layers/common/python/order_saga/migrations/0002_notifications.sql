-- One row per e-mail sent: the notification consumer skips a message whose (order, kind) is here,
-- so SQS's at-least-once delivery does not send the same e-mail twice.
CREATE TABLE notifications (
  order_id    CHAR(36)     NOT NULL,
  kind        ENUM('ORDER_CONFIRMATION','FAILURE_ALERT','CANCELLATION_NOTICE') NOT NULL,
  message_id  VARCHAR(128) NULL,
  sent_at     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (order_id, kind),
  CONSTRAINT fk_notifications_order FOREIGN KEY (order_id) REFERENCES orders (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
