"""Timing helpers shared by the benchmarks: alternating rounds, medians, a plain table."""

from __future__ import annotations

import time
from collections.abc import Callable


def timeit(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of ``fn`` over ``number`` calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def alternate(cases: dict[str, Callable[[], object]], number: int, rounds: int = 7,
              warmup: int = 3, settle: float = 0.2) -> dict[str, float]:
    """Median seconds per call of each case, measured in interleaved rounds.

    Timings on a shared 2-core machine drift by 15-25% between runs, so the cases being
    compared take turns within one process instead of running one after the other. Each
    timed round follows a pause of ``settle`` seconds and one untimed call of the same case:
    timed straight after the other engine, a case ran beside that engine's still-spinning
    threads (PyTorch up to 2x slower after graphnet; see bench_workloads.SETTLE_S).
    ``settle=0`` turns that off.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            if settle:
                time.sleep(settle)
                fn()
            samples[k].append(timeit(fn, number))
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def table(rows: list[tuple], header: tuple) -> str:
    cols = list(zip(*([header] + [tuple(str(c) for c in r) for r in rows])))
    widths = [max(len(c) for c in col) for col in cols]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)
