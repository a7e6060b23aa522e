"""What every benchmark reports for `make bench`: a figure, its baseline from the same run, the
ratio between them and the goal the ratio is held to (docs/performance.md)."""

import os
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    baseline: float
    unit: str
    goal: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def row(self) -> str:
        return (
            f"| {self.name} | {self.value:,.2f} {self.unit} | {self.baseline:,.2f} {self.unit} | "
            f"{self.ratio:.2f} | {self.goal} |"
        )


def print_table(figures: list[Figure]) -> None:
    load1, load5, _ = os.getloadavg()
    print(f"CPUs: {os.cpu_count()}, load average at the end: {load1:.1f} (1 min), {load5:.1f} (5 min)")
    print("| figure | value | baseline | ratio | goal |")
    print("| --- | ---: | ---: | ---: | --- |")
    for figure in figures:
        print(figure.row())


def percentile_ms(latencies: list[float], p: int) -> float:
    """The p-th percentile of latencies given in seconds, in milliseconds."""
    if len(latencies) < 2:
        return latencies[0] * 1000 if latencies else float("nan")
    return statistics.quantiles(latencies, n=100)[p - 1] * 1000
