"""`order-saga inventory ...`: the catalog's products, prices and stock, for an operator (MySQL,
written through to Redis)."""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import click

from order_ops.output import json_option, render_table
from order_saga.cache import create_redis
from order_saga.catalog import list_products, set_product
from order_saga.db import Database
from order_saga.errors import OrderSagaError
from order_saga.models import Product
from order_saga.settings import Settings


@click.group()
def inventory() -> None:
    """The catalog: products, prices and stock (MySQL, written through to Redis)."""


@contextmanager
def catalog_database() -> Iterator[Database]:
    """The database, closed afterwards; a domain error becomes click's one-line error (exit 1)."""
    database = Database(Settings())
    try:
        yield database
    except OrderSagaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.close()


def product_rows(products: Sequence[Product]) -> str:
    headers = ("product_id", "stock", "reserved", "available", "unit_price", "currency")
    return render_table(
        headers,
        [(p.product_id, p.stock, p.reserved, p.available, p.unit_price, p.currency) for p in products],
    )


def product_dict(product: Product) -> dict[str, Any]:
    return product.model_dump(mode="json") | {"available": product.available}


@inventory.command("list")
@json_option
def inventory_list(as_json: bool) -> None:
    """Show every product."""
    with catalog_database() as database:
        products = list_products(database)
    click.echo(json.dumps([product_dict(p) for p in products]) if as_json else product_rows(products))


@inventory.command("set")
@click.argument("product_id")
@click.option("--stock", type=click.IntRange(min=0), required=True)
@click.option("--price", type=Decimal, required=True, help="Unit price, e.g. 12.50.")
@click.option("--currency", default="EUR", show_default=True)
@click.option("--name", default="")
@json_option
def inventory_set(
    *, product_id: str, stock: int, price: Decimal, currency: str, name: str, as_json: bool
) -> None:
    """Create or update a product."""
    settings = Settings()
    with catalog_database() as database:
        product = set_product(
            database,
            create_redis(settings),
            product_id=product_id,
            stock=stock,
            unit_price=price,
            currency=currency,
            name=name,
        )
    click.echo(json.dumps(product_dict(product)) if as_json else product_rows([product]))
