"""The catalog: the inventory table's products, their prices and stock (an operator's view)."""

from decimal import Decimal

import pymysql
import redis

from .db import Database
from .errors import InvalidStateTransition
from .feeds import write_availability
from .models import Product

ER_CHECK_CONSTRAINT = {3819, 4025}  # MySQL, MariaDB
PRODUCT_COLUMNS = "product_id, stock, reserved, unit_price, currency"


def list_products(database: Database) -> list[Product]:
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT product_id, stock, reserved, unit_price, currency FROM inventory ORDER BY product_id"
        )
        return [Product(**row) for row in cursor.fetchall()]


def set_product(
    database: Database,
    cache: "redis.Redis",
    *,
    product_id: str,
    stock: int,
    unit_price: Decimal,
    currency: str,
    name: str = "",
) -> Product:
    """Create or update a product (its reservations are kept), then write its availability through."""
    wanted = Product(product_id=product_id, stock=stock, reserved=0, unit_price=unit_price, currency=currency)
    try:
        with database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO inventory (product_id, name, stock, reserved, unit_price, currency) "
                "VALUES (%s, %s, %s, 0, %s, %s) ON DUPLICATE KEY UPDATE name = VALUES(name), "
                "stock = VALUES(stock), unit_price = VALUES(unit_price), currency = VALUES(currency)",
                (
                    wanted.product_id,
                    name or wanted.product_id,
                    wanted.stock,
                    wanted.unit_price,
                    wanted.currency,
                ),
            )
            cursor.execute(
                f"SELECT {PRODUCT_COLUMNS} FROM inventory WHERE product_id = %s",  # noqa: S608
                (product_id,),
            )
            row = cursor.fetchone()
            assert row is not None  # just written in this transaction
            product = Product(**row)
    except pymysql.err.MySQLError as exc:
        if exc.args[0] in ER_CHECK_CONSTRAINT:
            raise InvalidStateTransition(f"{product_id}: stock cannot go below the reserved units") from exc
        raise
    write_availability(cache, {product_id: product.available})
    return product
