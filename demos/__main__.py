"""Run the lecture demos: ``python -m demos`` lists them, ``python -m demos NAME [--quick]``
runs one, ``python -m demos all --quick`` runs every one (the README's main job).

A demo is a module ``demos/<name>.py`` with a docstring (its first line is the summary) and
``run(quick: bool, out: Path, seed: int) -> dict``; the dict is printed as its summary.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import demos


def available() -> dict[str, str]:
    """Demo names and their one-line summaries, in lecture order."""
    found = {}
    for m in pkgutil.iter_modules(demos.__path__):
        if m.name.startswith("_") or m.name == "common":
            continue
        mod = importlib.import_module(f"demos.{m.name}")
        if hasattr(mod, "run"):
            # within a lecture, a module's ORDER (default 99) puts it in teaching order
            key = (m.name.split("_")[0], getattr(mod, "ORDER", 99), m.name)
            found[key] = (m.name, (mod.__doc__ or "").strip().splitlines()[0])
    return dict(found[k] for k in sorted(found))


def run_one(name: str, quick: bool, out: Path, seed: int) -> dict:
    mod = importlib.import_module(f"demos.{name}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = mod.run(quick=quick, out=out, seed=seed)
    print(f"\n== {name} ({time.perf_counter() - t0:.1f} s)")
    for k, v in summary.items():
        print(f"   {k}: {v}")
    return summary


def main(argv: list[str] | None = None) -> int:
    names = available()
    p = argparse.ArgumentParser(prog="python -m demos", description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="a demo name, or 'all'")
    p.add_argument("--quick", action="store_true", help="small sizes, a few seconds each")
    p.add_argument("--out", type=Path, default=Path("out"), help="where pictures go (out/)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.name is None:
        print("graphnet lecture demos (python -m demos NAME [--quick] [--out DIR]):\n")
        for n, doc in names.items():
            print(f"  {n:32s} {doc}")
        print(f"  {'all':32s} every demo in turn")
        return 0
    todo = list(names) if args.name == "all" else [args.name]
    for n in todo:
        if n not in names:
            print(f"unknown demo {n!r}; choose one of: {', '.join(names)}, all", file=sys.stderr)
            return 2
        run_one(n, args.quick, args.out / n if args.name == "all" else args.out, args.seed)
    print(f"\npictures written under {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
