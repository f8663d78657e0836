"""Summarise py-spy folded stacks (``py-spy record -f raw``): where the serving thread spends time.

Prints, for each profile, the share of the samples (py-spy leaves out idle threads, so these are
the busy ones of every thread) spent inside each layer (inclusive: a frame of it anywhere on the
stack) and the functions with the most samples of their own.

Run:  python benchmarks/profile_summary.py PROFILE.txt [...] [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

LAYERS = [
    ("chitram_falcon", "chitram_falcon/"),
    ("chitram_core", "chitram_core/"),
    ("falcon", "falcon/"),
    ("uvicorn", "uvicorn/"),
    ("redis-py", "redis/"),
    ("sqlalchemy", "sqlalchemy/"),
    ("anyio", "anyio/"),
    ("asyncio", "asyncio/"),
]


def frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def where(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match["func"], match["file"]


def summarise(path: Path, top: int) -> None:
    samples: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[stack] += int(count)
    busy = sum(samples.values())
    print(f"== {path.name}: {busy} busy samples")
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in samples.items():
        fs = frames(stack)
        if not fs:
            continue
        seen = set()
        for frame in fs:
            _, file = where(frame)
            for layer, marker in LAYERS:
                if marker in file and layer not in seen:
                    seen.add(layer)
                    inclusive[layer] += n
        func, file = where(fs[-1])
        own[f"{func} ({file.rsplit('site-packages/', 1)[-1]})"] += n
    print("  inclusive share of busy samples by layer:")
    for layer, _ in LAYERS:
        print(f"    {layer:<16} {inclusive[layer] / (busy or 1):>6.1%}")
    print(f"  top {top} functions by own samples (share of busy):")
    for name, n in own.most_common(top):
        print(f"    {n / (busy or 1):>6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        summarise(path, args.top)


if __name__ == "__main__":
    main()
