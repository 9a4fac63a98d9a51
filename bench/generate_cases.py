"""Benchmark: the synthetic case generator streams any N (up to 10,000,000) in bounded memory.

    .venv/bin/python -m bench.generate_cases --n 1000000

Prints cases/s and the peak resident memory before and after generating, which stays flat in N
because cases are produced chunk by chunk and never held.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    from fixtures.cases import generate_cases
    from fixtures.city import build_city

    city = build_city()
    before = peak_mb()
    tz = dt.timezone(dt.timedelta(hours=8))
    end = dt.datetime(2026, 11, 1, tzinfo=tz)
    t = time.perf_counter()
    n = 0
    for _ in generate_cases(city, args.n, end - dt.timedelta(days=365), end, seed=args.seed, now=end):
        n += 1
    sec = time.perf_counter() - t
    print(f"{n:,} cases in {sec:.1f} s: {n / sec:,.0f} cases/s; peak RSS {before:.0f} MB with the city built, "
          f"{peak_mb():.0f} MB after streaming all cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
