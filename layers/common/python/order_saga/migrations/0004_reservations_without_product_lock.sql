-- ReserveStock writes its reservation rows before its conditional UPDATE of the inventory row, so
-- that the UPDATE is the last statement before COMMIT and a hot product's row stays locked for
-- one round trip only. The foreign key from a reservation to its product would share-lock the
-- inventory row on that insert, and the UPDATE's upgrade of that lock deadlocks concurrent sagas.
-- It guarded nothing the step does not: a reservation commits only with the UPDATE that matched
-- its product's row, and products are never deleted. The index on product_id stays.
ALTER TABLE inventory_reservations DROP FOREIGN KEY fk_inventory_reservations_product;
