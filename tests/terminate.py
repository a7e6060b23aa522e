"""A `make test` stopped with SIGTERM (a CI runner's cancel, `kill`) tears down like Ctrl-C does.

Without this, SIGTERM ends pytest at once and no fixture teardown runs: the e2e tier's stack
(MariaDB, Redis, moto, the edge) keeps running and holds its ports against the next run.
"""

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Ctrl-C's handler: pytest stops the test, tears down every fixture and reports "interrupted".
    signal.signal(signal.SIGTERM, signal.default_int_handler)
