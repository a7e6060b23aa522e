"""`make test` stopped with SIGTERM still tears its fixtures down (tests/terminate.py)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).parents[2]

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
    time.sleep(60)
"""


def test_a_run_terminated_mid_test_tears_its_fixtures_down(tmp_path: Path) -> None:
    # Given a pytest run, with the project's plugin, inside a test whose fixture holds a resource
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    test_file = tmp_path / "test_held.py"
    test_file.write_text(HELD_TEST.format(started=str(started), stopped=str(stopped)))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.terminate", "-p", "no:cacheprovider", str(test_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 50
        while not started.exists():
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, "the held test never started"
            time.sleep(0.05)

        # When the run is sent SIGTERM, as a CI runner's cancel or `kill` does
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
    finally:
        run.kill()

    # Then the fixture was torn down, and pytest says it was interrupted
    assert stopped.exists(), output
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
