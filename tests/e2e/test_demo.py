"""`make demo` and `make run` as a newcomer runs them: the whole stack from nothing, then stopped.

Each test runs a stack in a state folder and on ports of its own, so it is a fresh machine's first
run (MariaDB initialised from scratch, moto, the edge) and leaves the session's stack alone.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import cli, our_processes
from tests.support.stack import WAIT_SECONDS, stack_environment, wait_until


@pytest.fixture
def fresh_stack(tmp_path: Path) -> dict[str, str]:
    """The environment of a stack with a folder and ports of its own (nothing of the session's)."""
    return stack_environment(tmp_path / "stack")


def _environment_mentions(proc: Path, marker: str) -> bool:
    try:
        return marker in (proc / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return False


def left_behind(env: dict[str, str]) -> list[str]:
    """Live processes of that stack: the servers by folder or port, any child by its environment."""
    port = env["DEVSTACK_GRPC_PORT"]
    children = [str(proc) for proc in Path("/proc").glob("[0-9]*") if _environment_mentions(proc, port)]
    return our_processes(env) + children


def test_the_demo_runs_end_to_end_on_a_fresh_stack_and_stops_cleanly(
    fresh_stack: dict[str, str], tmp_path: Path
) -> None:
    try:
        demo = cli("demo", env=fresh_stack, timeout=600)
        # The README's order: `make demo`, then `make test` (whose e2e tier starts and stops a
        # stack of its own, as here), then a newcomer's own order on the demo's stack
        tier_stack = stack_environment(tmp_path / "tier")
        for command in ("up", "down"):
            done = cli(command, env=tier_stack, timeout=WAIT_SECONDS)
            assert done.returncode == 0, done.stdout + done.stderr
        created = cli("orders", "create", "--item", "book=1", "--json", env=fresh_stack)
        assert created.returncode == 0, created.stdout + created.stderr
        order_id = json.loads(created.stdout)["order_id"]
        watched = cli("orders", "watch", order_id, "--timeout", "180", env=fresh_stack, timeout=WAIT_SECONDS)
    finally:
        down = cli("down", env=fresh_stack)
    # Then every scenario came out as expected, followed live through WatchOrder
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "7 of 7 outcomes as expected" in demo.stdout
    good = next(line for line in demo.stdout.splitlines() if line.startswith("a good order"))
    assert "PENDING > CONFIRMED" in good
    assert "OrderCancellation: Compensate > " in demo.stdout  # refund and restock side by side
    assert "CompensationOutcome > MarkOrderCancelled > SendCancellationNotice > OrderCancelled" in demo.stdout
    assert "no unit left reserved" in demo.stdout
    # and after the other stack came and went, the demo's stack still confirms an order
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "CONFIRMED" in watched.stdout.splitlines()[-1], watched.stdout
    # And stopping leaves no process of that stack behind (the edge and moto included)
    assert down.returncode == 0, down.stderr
    assert "edge: stopped" in down.stdout
    assert left_behind(fresh_stack) == []


def test_run_stops_the_whole_stack_on_ctrl_c(fresh_stack: dict[str, str]) -> None:
    # Given `order-saga run` in the foreground, up and serving
    log = Path(fresh_stack["DEVSTACK_DIR"]).parent / "run.log"
    with log.open("w") as output:
        # Started as a shell's background job is: with SIGINT ignored, which `run` must undo. The
        # shell ignores it before exec; a preexec_fn would make Python fork() with this process's
        # gRPC channels alive, and grpcio's fork handlers can abort the child (grpc/grpc#43055).
        process = subprocess.Popen(
            ["/bin/sh", "-c", 'trap "" INT; exec "$0" -m devstack run', sys.executable],
            env=fresh_stack,
            stdout=output,
            stderr=output,
        )
    try:
        wait_until(lambda: "ready:" in log.read_text() or process.poll() is not None, "`run` to be ready")
        assert process.poll() is None, log.read_text()
        # When the user presses Ctrl-C
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            cli("down", env=fresh_stack)
    # Then every part stopped, and nothing of that stack is left running
    assert process.returncode == 0, log.read_text()
    assert "edge: stopped" in log.read_text()
    assert left_behind(fresh_stack) == []
