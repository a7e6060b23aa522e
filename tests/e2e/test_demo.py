"""`make demo` as a newcomer runs it: the whole stack from nothing, the scenarios, then `down`.

It runs in a state folder and on ports of its own, so it is the fresh machine's first run
(MariaDB initialised from scratch, moto, the edge) and leaves the session's stack alone.
"""

import os
from pathlib import Path

from tests.integration.test_devstack import cli, free_port, our_processes


def test_the_demo_runs_end_to_end_on_a_fresh_stack_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MYSQL_", "REDIS_", "AWS_", "JWT_", "ORDERS_"))
    }
    env |= {
        "DEVSTACK_DIR": str(tmp_path / "stack"),
        "DEVSTACK_MYSQL_PORT": str(free_port()),
        "DEVSTACK_REDIS_PORT": str(free_port()),
        "DEVSTACK_MOTO_PORT": str(free_port()),
        "DEVSTACK_GRPC_PORT": str(free_port()),
        "DEVSTACK_METRICS_PORT": str(free_port()),
    }

    try:
        demo = cli("demo", env=env, timeout=300)
    finally:
        down = cli("down", env=env)
    # Then every scenario came out as expected, followed live through WatchOrder
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "7 of 7 outcomes as expected" in demo.stdout
    good = next(line for line in demo.stdout.splitlines() if line.startswith("a good order"))
    assert "PENDING > CONFIRMED" in good
    assert "OrderCancellation: RefundPayment > ReleaseStock > MarkOrderCancelled" in demo.stdout
    assert "no unit left reserved" in demo.stdout
    # And stopping leaves no process of that stack behind (the edge and moto included)
    assert down.returncode == 0, down.stderr
    assert "edge: stopped" in down.stdout
    assert our_processes(env) == []
    leftovers = [
        p for p in Path("/proc").glob("[0-9]*") if _environment_mentions(p, env["DEVSTACK_GRPC_PORT"])
    ]
    assert leftovers == []


def _environment_mentions(proc: Path, marker: str) -> bool:
    try:
        return marker in (proc / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return False
