"""`python -m deploy.synthetic [ITEMS]`: print a few sample items, then measure the generator's rate."""

from __future__ import annotations

import sys
import time

from deploy.synthetic.generator import GeneratorConfig, generate


def benchmark(items: int = 200_000, seed: int = 1) -> tuple[float, float]:
    """Items per second, by the wall clock and by CPU time (steadier on a shared machine), generating
    `items` items at a case load high enough to produce them."""
    config = GeneratorConfig(seed=seed, start_year=1990, years=40, cases_per_year=max(200.0, items / 150))
    wall, cpu = time.perf_counter(), time.process_time()
    produced = 0
    for _ in generate(config):
        produced += 1
        if produced == items:
            break
    return produced / (time.perf_counter() - wall), produced / (time.process_time() - cpu)


def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for item in generate(GeneratorConfig(seed=1, years=1, cases_per_year=3)):
        label = f"  # intended error: {item.intended_error}" if item.intended_error else ""
        sys.stdout.write(item.to_json_line().decode().rstrip("\n") + label + "\n")
    wall, cpu = benchmark(items)
    print(f"{wall:,.0f} items/s ({cpu:,.0f} per CPU second) generating {items:,} items")


if __name__ == "__main__":
    main()
