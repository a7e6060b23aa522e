"""A whole local stack of these tests' own (state folder and ports), with the console and
Prometheus, on which `make demo` has run: what an analyst or operator has in front of them after
the README's first command. The browser tests and the Prometheus tests read it; nothing else does.

Before the demo, an unrelated order is left flagged NEEDS_ATTENTION while still holding a reserved
unit, as a real stack may have: the demo must judge only its own orders, and the Attention page
must show it.
"""

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.console import ConsoleStack
from tests.support.processes import cli
from tests.support.stack import stack_environment

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ORDER_LINE = re.compile(r"^  ([0-9a-f-]{36}) (.+?)(?: \(.*\))?$")


def _flag_an_unrelated_order(database: Database) -> str:
    """An order of another user, NEEDS_ATTENTION, still holding one reserved pen."""
    order_id = str(uuid.uuid4())
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency,"
            " payment_token, status, failure_reason) VALUES (%s, 'someone-else', %s, %s, 1.20, 'EUR',"
            " 'tok_visa', 'NEEDS_ATTENTION', 'ReleaseStock kept failing')",
            (order_id, order_id, "0" * 64),
        )
        cursor.execute(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price)"
            " VALUES (%s, 'pen', 1, 1.20)",
            (order_id,),
        )
        cursor.execute(
            "INSERT INTO inventory_reservations (order_id, product_id, quantity, status)"
            " VALUES (%s, 'pen', 1, 'RESERVED')",
            (order_id,),
        )
        cursor.execute("UPDATE inventory SET reserved = reserved + 1 WHERE product_id = 'pen'")
    return order_id


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    env = stack_environment(tmp_path_factory.mktemp("console") / "stack")
    try:
        up = cli("up", "--with-prometheus", env=env, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        values = {k: v for k, v in dotenv_values(Path(env["DEVSTACK_DIR"]) / "env").items() if v is not None}
        settings = Settings(
            mysql_host=values["MYSQL_HOST"],
            mysql_port=int(values["MYSQL_PORT"]),
            mysql_user=values["MYSQL_USER"],
            mysql_password=values["MYSQL_PASSWORD"],
            mysql_database=values["MYSQL_DATABASE"],
            redis_url=values["REDIS_URL"],
        )
        database = Database(settings)
        flagged = _flag_an_unrelated_order(database)
        database.close()
        demo = cli("demo", env=env, timeout=300)
        assert demo.returncode == 0, f"the demo failed:\n{demo.stdout}{demo.stderr}"
        orders = {}
        for line in demo.stdout.splitlines():
            match = ORDER_LINE.match(line)
            if match:
                orders[match.group(2)] = match.group(1)
        yield ConsoleStack(
            env=env,
            settings=settings,
            console_url=values["CONSOLE_URL"],
            prometheus_url=values["PROMETHEUS_URL"],
            metrics_url=values["EDGE_METRICS_URL"],
            orders=orders,
            flagged_order=flagged,
            demo_output=demo.stdout + demo.stderr,
            aws={
                key: value for key, value in values.items() if key.startswith("AWS_") or key.endswith("_URL")
            },
        )
    finally:
        cli("down", env=env)


@pytest.fixture(scope="package")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Debian's Chromium, headless, driven through Debian's chromedriver (nothing downloaded)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are missing: run `make test`, which installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1500,1300",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
