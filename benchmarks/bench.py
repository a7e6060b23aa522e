"""Every benchmark, briefly, and one table: figure, baseline, ratio, goal (`make bench`).

Each figure's baseline is measured in the same run (the full stack's is its first measured rate,
9 orders/s on 2026-11-24: the stack cannot run its old self beside itself). The runs are shorter
than the ones in docs/performance.md, so expect more noise; the machine's load average is printed
with the table. The cold starts are medians of 7; the full stack's measured burst follows an
unmeasured one of the same size, so it finds as many warm workers as it needs (the warm-up's line
counts the cold starts).
"""

import cold_start
import create_order
import full_stack
import reserve_stock
from figures import print_table


def main() -> None:
    figures = [
        *reserve_stock.measure(orders=800, rounds=4, buyers=64, sale=256),
        *cold_start.measure(repeats=7),
        *create_order.measure(clients=8, seconds=3),
        *full_stack.measure(clients=8, orders=60, warmup=60),
    ]
    print()
    print_table(figures)


if __name__ == "__main__":
    main()
