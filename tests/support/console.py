"""The console tests' stack as they read it (a stack of their own on which `make demo` ran), and
screenshots of the pages they open."""

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from selenium import webdriver
from selenium.webdriver.common.by import By

from devstack.paths import REPO_ROOT
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.processes import cli
from tests.support.stack import held

SCREENSHOTS = REPO_ROOT / "build" / "screenshots"


@dataclass
class ConsoleStack:
    env: dict[str, str]
    settings: Settings  # how to reach its MySQL and Redis
    console_url: str
    prometheus_url: str
    metrics_url: str
    orders: dict[str, str]  # the demo's scenario -> order id
    flagged_order: str  # the unrelated NEEDS_ATTENTION order
    demo_output: str
    aws: dict[str, str]  # the stack's AWS_* settings and queue URLs

    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.aws["AWS_ENDPOINT_URL"],
            region_name=self.aws["AWS_REGION"],
            aws_access_key_id=self.aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.aws["AWS_SECRET_ACCESS_KEY"],
        )

    def dlq_depth(self) -> int:
        attributes = self.sqs().get_queue_attributes(
            QueueUrl=self.aws["COMPENSATION_DLQ_URL"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def cli(self, *args: str, timeout: float = 120) -> str:
        done = cli(*args, env=self.env, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def held(self, function: str) -> AbstractContextManager[None]:
        """Every call of `function` held (a `hold` fault in the stack's plan) while the block runs."""
        return held(Path(self.env["DEVSTACK_DIR"]) / "faults.json", function)

    def database(self) -> Database:
        return Database(self.settings)

    def sold_out_order(self) -> str:
        """The buyer of the last lamp who lost the race (the slow payer, unless load reversed it)."""
        pair = [
            order_id for scenario, order_id in self.orders.items() if scenario.startswith("the last lamp")
        ]
        database = self.database()
        with database.transaction() as cursor:
            cursor.execute(
                "SELECT order_id FROM orders WHERE status = 'FAILED' AND order_id IN (%s, %s)", pair
            )
            [row] = cursor.fetchall()
        database.close()
        return str(row["order_id"])


def _whole_page(browser: webdriver.Chrome) -> None:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1500, min(int(height) + 40, 4000))


def screenshot(browser: webdriver.Chrome, name: str) -> Path:
    """The whole page, saved under build/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    _whole_page(browser)
    browser.save_screenshot(str(path))
    browser.set_window_size(1500, 1300)
    return path


def execution_screenshot(browser: webdriver.Chrome, name: str) -> Path:
    """The first execution's graph and steps, its event table folded (the README's picture)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    browser.execute_script("document.querySelector('#execution-1 details.events').open = false;")
    _whole_page(browser)
    browser.find_element(By.ID, "execution-1").screenshot(str(path))
    browser.set_window_size(1500, 1300)
    browser.execute_script("document.querySelector('#execution-1 details.events').open = true;")
    return path
