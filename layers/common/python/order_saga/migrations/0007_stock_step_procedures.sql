-- ReserveStock, ConfirmOrder and ReleaseStock as stored procedures: each step's reads, checks and
-- writes run inside the server in one CALL, and the step's transaction is that CALL and a COMMIT,
-- the two round trips the bare conditional UPDATE needs (docs/decisions.md). The procedures do
-- not commit: the caller owns the transaction and rolls it back on any error, so a refusal in the
-- middle leaves nothing written. A refusal is a SIGNAL whose message is `<error class>: <detail>`,
-- which order_saga.repository.call_step turns into the typed error of that name. The inventory
-- rows are updated last, in product_id order (concurrent sagas lock them in the same order).
-- Reads are `SELECT … INTO`, consistent reads that lock nothing: written as `IF EXISTS (SELECT …)`
-- they made concurrent ReserveStocks deadlock on MariaDB 10.11 (the subquery locked what the
-- reservation inserts then waited for).
-- SQL SECURITY INVOKER: a procedure runs with the rights of the login that calls it (the
-- application's, which may read and write rows and EXECUTE), not of the migration's.
-- Expand only: a procedure whose behaviour changes gets a new name, and the old one is dropped by
-- a contract step once no release calls it.

CREATE PROCEDURE saga_reserve_stock(IN p_order_id CHAR(36))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_orders INT;
  DECLARE v_reservations INT;
  DECLARE v_released INT;
  DECLARE v_reserved_now BOOLEAN DEFAULT FALSE;
  DECLARE v_message VARCHAR(128);
  -- Lock the order's row: it serialises the order's steps (a late ReleaseStock waits).
  SELECT COUNT(*) INTO v_orders FROM orders WHERE order_id = p_order_id FOR UPDATE;
  IF v_orders = 0 THEN
    SET v_message = CONCAT('OrderNotFound: order ', p_order_id, ' does not exist');
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
  END IF;
  SELECT COUNT(*), SUM(status = 'RELEASED') INTO v_reservations, v_released
    FROM inventory_reservations WHERE order_id = p_order_id;
  IF v_released > 0 THEN
    SET v_message = CONCAT('StepAlreadyCompensated: order ', p_order_id,
                           ': ReleaseStock already ran; nothing reserved');
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
  END IF;
  -- Reservation rows already there: a repeat, which changes nothing.
  IF v_reservations = 0 THEN
    INSERT INTO inventory_reservations (order_id, product_id, quantity, status)
      SELECT order_id, product_id, quantity, 'RESERVED' FROM order_items WHERE order_id = p_order_id;
    INSERT INTO saga_log (saga_id, step, status, detail)
      SELECT p_order_id, 'ReserveStock', 'RESERVED',
             GROUP_CONCAT(CONCAT(product_id, 'x', quantity) ORDER BY product_id SEPARATOR ', ')
        FROM order_items WHERE order_id = p_order_id;
    BEGIN
      DECLARE v_product VARCHAR(36);
      DECLARE v_quantity INT;
      DECLARE v_done BOOLEAN DEFAULT FALSE;
      DECLARE v_lines CURSOR FOR
        SELECT product_id, quantity FROM order_items WHERE order_id = p_order_id ORDER BY product_id;
      DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
      OPEN v_lines;
      take_units: LOOP
        FETCH v_lines INTO v_product, v_quantity;
        IF v_done THEN
          LEAVE take_units;
        END IF;
        UPDATE inventory SET reserved = reserved + v_quantity
          WHERE product_id = v_product AND stock - reserved >= v_quantity;
        IF ROW_COUNT() = 0 THEN
          SET v_message = CONCAT('OutOfStock: order ', p_order_id, ': fewer than ', v_quantity,
                                 ' of ', v_product, ' left');
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
        END IF;
      END LOOP;
      CLOSE v_lines;
    END;
    SET v_reserved_now = TRUE;
  END IF;
  -- The reservations, and what each product has available now (exact: this transaction holds
  -- the rows it reserved on).
  SELECT r.product_id, r.quantity, r.status, p.stock - p.reserved AS available, v_reserved_now AS changed
    FROM inventory_reservations r LEFT JOIN inventory p ON p.product_id = r.product_id
    WHERE r.order_id = p_order_id ORDER BY r.product_id;
END;

CREATE PROCEDURE saga_release_stock(IN p_order_id CHAR(36))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_status VARCHAR(20);
  DECLARE v_reservations INT;
  DECLARE v_held INT;
  DECLARE v_message VARCHAR(128);
  SELECT MAX(status) INTO v_status FROM orders WHERE order_id = p_order_id FOR UPDATE;
  IF v_status IS NULL THEN
    SET v_message = CONCAT('OrderNotFound: order ', p_order_id, ' does not exist');
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
  END IF;
  SELECT COUNT(*), SUM(status <> 'RELEASED') INTO v_reservations, v_held
    FROM inventory_reservations WHERE order_id = p_order_id;
  IF v_reservations = 0 THEN
    -- Nothing reserved: markers of quantity 0, which stop a late ReserveStock.
    INSERT INTO inventory_reservations (order_id, product_id, quantity, status)
      SELECT order_id, product_id, 0, 'RELEASED' FROM order_items WHERE order_id = p_order_id;
    INSERT INTO saga_log (saga_id, step, status) VALUES (p_order_id, 'ReleaseStock', 'NOTHING_TO_UNDO');
  ELSE
    IF v_status = 'CONFIRMED' THEN
      SET v_message = CONCAT('InvalidStateTransition: order ', p_order_id,
                             ' is CONFIRMED: only the cancellation machine restocks it');
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
    END IF;
    IF v_held > 0 THEN
      INSERT INTO saga_log (saga_id, step, status, detail)
        SELECT p_order_id, 'ReleaseStock', 'RELEASED',
               GROUP_CONCAT(CONCAT(product_id, 'x', quantity) ORDER BY product_id SEPARATOR ', ')
          FROM inventory_reservations WHERE order_id = p_order_id;
      BEGIN
        DECLARE v_product VARCHAR(36);
        DECLARE v_quantity INT;
        DECLARE v_held_as VARCHAR(20);
        DECLARE v_done BOOLEAN DEFAULT FALSE;
        DECLARE v_held_lines CURSOR FOR
          SELECT product_id, quantity, status FROM inventory_reservations
            WHERE order_id = p_order_id AND status <> 'RELEASED' ORDER BY product_id;
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
        OPEN v_held_lines;
        give_back: LOOP
          FETCH v_held_lines INTO v_product, v_quantity, v_held_as;
          IF v_done THEN
            LEAVE give_back;
          END IF;
          UPDATE inventory_reservations SET status = 'RELEASED'
            WHERE order_id = p_order_id AND product_id = v_product;
          -- Reserved units are given back; the units of a committed reservation are restocked.
          IF v_held_as = 'RESERVED' THEN
            UPDATE inventory SET reserved = reserved - v_quantity WHERE product_id = v_product;
          ELSE
            UPDATE inventory SET stock = stock + v_quantity WHERE product_id = v_product;
          END IF;
        END LOOP;
        CLOSE v_held_lines;
      END;
    END IF;
  END IF;
  SELECT r.product_id, r.quantity, r.status, p.stock - p.reserved AS available
    FROM inventory_reservations r LEFT JOIN inventory p ON p.product_id = r.product_id
    WHERE r.order_id = p_order_id ORDER BY r.product_id;
END;

CREATE PROCEDURE saga_confirm_order(IN p_order_id CHAR(36))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_status VARCHAR(20);
  DECLARE v_cancel_requested BOOLEAN;
  DECLARE v_confirmed_before INT;
  DECLARE v_paid INT;
  DECLARE v_reservations INT;
  DECLARE v_not_reserved INT;
  DECLARE v_message VARCHAR(128);
  SELECT MAX(status), MAX(cancel_requested) INTO v_status, v_cancel_requested
    FROM orders WHERE order_id = p_order_id FOR UPDATE;
  IF v_status IS NULL THEN
    SET v_message = CONCAT('OrderNotFound: order ', p_order_id, ' does not exist');
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
  END IF;
  IF v_status <> 'PENDING' THEN
    -- A retry after its own commit answers CONFIRMED again, even when the customer cancelled since.
    SELECT COUNT(*) INTO v_confirmed_before FROM saga_log
      WHERE saga_id = p_order_id AND step = 'ConfirmOrder' AND status = 'CONFIRMED';
    IF v_status = 'CONFIRMED' OR v_confirmed_before > 0 THEN
      SELECT 'CONFIRMED' AS status, NULL AS failure_reason, NULL AS reason_code,
             '' AS owed_compensations, FALSE AS changed;
    ELSE
      SET v_message = CONCAT('InvalidStateTransition: order ', p_order_id, ' is ', v_status,
                             '; only a PENDING order is confirmed');
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
    END IF;
  ELSE
    IF v_cancel_requested THEN
      SET v_message = CONCAT('OrderCancelled: order ', p_order_id,
                             ': the customer cancelled it before confirmation');
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
    END IF;
    SELECT COUNT(*) INTO v_paid FROM payments WHERE order_id = p_order_id AND status = 'SUCCESS';
    IF v_paid = 0 THEN
      SET v_message = CONCAT('InvalidStateTransition: order ', p_order_id, ': no successful payment to confirm');
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
    END IF;
    SELECT COUNT(*), SUM(status <> 'RESERVED') INTO v_reservations, v_not_reserved
      FROM inventory_reservations WHERE order_id = p_order_id;
    IF v_reservations = 0 OR v_not_reserved > 0 THEN
      SET v_message = CONCAT('InvalidStateTransition: order ', p_order_id, ': its stock is not reserved');
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
    END IF;
    UPDATE orders SET status = 'CONFIRMED', owed_compensations = '', version = version + 1
      WHERE order_id = p_order_id;
    INSERT INTO saga_log (saga_id, step, status) VALUES (p_order_id, 'ConfirmOrder', 'CONFIRMED');
    UPDATE inventory_reservations SET status = 'COMMITTED' WHERE order_id = p_order_id AND status = 'RESERVED';
    BEGIN
      -- Last: the reserved units leave the stock for good.
      DECLARE v_product VARCHAR(36);
      DECLARE v_quantity INT;
      DECLARE v_done BOOLEAN DEFAULT FALSE;
      DECLARE v_committed CURSOR FOR
        SELECT product_id, quantity FROM inventory_reservations WHERE order_id = p_order_id ORDER BY product_id;
      DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
      OPEN v_committed;
      take_out: LOOP
        FETCH v_committed INTO v_product, v_quantity;
        IF v_done THEN
          LEAVE take_out;
        END IF;
        UPDATE inventory SET stock = stock - v_quantity, reserved = reserved - v_quantity
          WHERE product_id = v_product;
      END LOOP;
      CLOSE v_committed;
    END;
    SELECT status, failure_reason, reason_code, owed_compensations, TRUE AS changed
      FROM orders WHERE order_id = p_order_id;
  END IF;
END;
