"""`make test` stopped with SIGTERM still tears its fixtures down (tests/terminate.py)."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import Deadline

REPO_ROOT = Path(__file__).parents[2]

# The budget of this test's waits, below the unit tier's limit; the held test holds a little longer,
# so it is still running whenever the signal comes.
BUDGET_SECONDS = 45
HELD_TEST = """
import time
from pathlib import Path

import pytest


@pytest.fixture
def stack():
    Path({started!r}).touch()
    yield
    Path({stopped!r}).touch()


def test_held(stack):
    deadline = time.monotonic() + {hold}
    while not Path({release!r}).exists():  # nothing creates it: held until the run is terminated
        assert time.monotonic() < deadline, "the run was never terminated"
        time.sleep(0.05)
"""


def test_a_run_terminated_mid_test_tears_its_fixtures_down(tmp_path: Path) -> None:
    # Given a pytest run, with the project's plugin, inside a test whose fixture holds a resource
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    test_file = tmp_path / "test_held.py"
    test_file.write_text(
        HELD_TEST.format(
            started=str(started),
            stopped=str(stopped),
            release=str(tmp_path / "release"),
            hold=BUDGET_SECONDS + 5,
        )
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.terminate", "-p", "no:cacheprovider", str(test_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = Deadline(BUDGET_SECONDS)
        deadline.wait_for(lambda: started.exists() or run.poll() is not None, "the held test to start")
        assert run.poll() is None, run.communicate()[0]

        # When the run is sent SIGTERM, as a CI runner's cancel or `kill` does
        run.send_signal(signal.SIGTERM)
        try:
            output, _ = run.communicate(timeout=deadline.left("the terminated run to end"))
        except subprocess.TimeoutExpired:
            ended = f"the run had not ended after SIGTERM when the test's {BUDGET_SECONDS}s were up"
            raise AssertionError(ended) from None
    finally:
        run.kill()

    # Then the fixture was torn down, and pytest says it was interrupted
    assert stopped.exists(), output
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
