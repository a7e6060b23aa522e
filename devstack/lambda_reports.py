"""Lambda's REPORT records, locally: one line per invocation in the function's log.

After every invocation Lambda writes a platform line to the function's log stream, which is what
its duration and memory figures (and a right-sized memory setting) are read from:

    REPORT RequestId: <id>\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t
    Max Memory Used: 71 MB\tInit Duration: 412.50 ms

(one line; `Init Duration` only on a cold start, `Status: timeout` when the invocation timed
out). The local worker (devstack/lambda_runtime.py) writes the same line to its function's log,
`.devstack/lambda/<step>.log`, before it answers (so whoever has an answer finds its report):
the duration is the handler's own time, the memory the worker process's peak resident set
(VmHWM: ru_maxrss would also count the moto server's memory, which the worker was forked from).
The invoker writes it for an invocation that timed out, whose worker it kills.
`grep REPORT .devstack/lambda/*.log` reads them; benchmarks/full_stack.py prints them per step.

This module is imported by every worker: standard library only.
"""

import math
import re
from pathlib import Path
from typing import NamedTuple

TIMEOUT = "timeout"
_LINE = re.compile(
    r"^REPORT RequestId: (?P<request_id>\S+)\tDuration: (?P<duration>[\d.]+) ms\t"
    r"Billed Duration: \d+ ms\tMemory Size: (?P<memory>\d+) MB\tMax Memory Used: (?P<used>\d+) MB"
    r"(?:\tInit Duration: (?P<init>[\d.]+) ms)?(?:\tStatus: (?P<status>\w+))?$"
)


class Report(NamedTuple):
    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None  # a cold start's
    status: str = ""  # TIMEOUT, or "" when the handler answered

    def line(self) -> str:
        fields = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {math.ceil(self.duration_ms)} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            fields.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.status:
            fields.append(f"Status: {self.status}")
        return "\t".join(fields) + "\n"


def peak_memory_mb(pid: int | str = "self") -> int:
    """The process's peak resident set since it started its program, in MB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    peak = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(peak.split()[1]) // 1024


def parse(line: str) -> Report | None:
    """The report on this log line, or None for any other line."""
    found = _LINE.match(line.rstrip("\n"))
    if found is None:
        return None
    init = found["init"]
    return Report(
        request_id=found["request_id"],
        duration_ms=float(found["duration"]),
        memory_size_mb=int(found["memory"]),
        max_memory_used_mb=int(found["used"]),
        init_duration_ms=float(init) if init is not None else None,
        status=found["status"] or "",
    )


def log_ends(log_dir: Path) -> dict[str, int]:
    """Where each step's log ends now (its size), to read only what is written after."""
    return {log.stem: log.stat().st_size for log in log_dir.glob("*.log")}


def reports_since(log_dir: Path, ends: dict[str, int]) -> dict[str, list[Report]]:
    """The reports each step's log received after `ends` (from `log_ends`), by step."""
    found: dict[str, list[Report]] = {}
    for log in sorted(log_dir.glob("*.log")):
        with log.open("rb") as handle:
            handle.seek(ends.get(log.stem, 0))
            lines = handle.read().decode(errors="replace").splitlines()
        reports = [report for report in map(parse, lines) if report is not None]
        if reports:
            found[log.stem] = reports
    return found
