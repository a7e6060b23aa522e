"""Ports and processes of the tests' own stacks: `order-saga` run as a newcomer types it, and ports
no other process is handed while a test run holds them."""

import fcntl
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

PORT_LOCKS = Path("/tmp/order-saga-test-ports")
# The kernel hands out ephemeral ports from ip_local_port_range only, so a port below it is never
# given to a client connection; the lock file keeps two test runs on one machine apart.
_held: list[IO[str]] = []


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port held for this test process until it ends: below the ephemeral range, locked
    against other test runs, and free to bind now."""
    PORT_LOCKS.mkdir(exist_ok=True)
    candidates = list(range(20000, max(_ephemeral_start(), 21000)))
    random.shuffle(candidates)
    for port in candidates:
        lock = (PORT_LOCKS / f"{port}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                lock.close()
                continue
        _held.append(lock)
        return port
    raise AssertionError("no free loopback port below the ephemeral range")


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`order-saga ARGS` in a process of its own, as a newcomer types it."""
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def our_processes(env: dict[str, str]) -> list[str]:
    """Command lines of live processes of this stack (mariadbd names its folder, redis-server its port)."""
    markers = (env["DEVSTACK_DIR"], f"127.0.0.1:{env['DEVSTACK_REDIS_PORT']}")
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if any(marker in cmdline for marker in markers) and "State:\tZ" not in status:
            found.append(cmdline)
    return found
