"""Summarise py-spy folded stacks (``py-spy record -f raw``): where the serving thread spends time.

Prints, for each profile, the share of the samples (py-spy leaves out idle threads, so these are
the busy ones of every thread) in each layer, inclusive (a frame of it anywhere on the stack,
start-up frames aside) and innermost (the layer of the innermost Python frame, which also
carries the native code it calls), and the functions with the most samples of their own.

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
    ("asyncio loop", "asyncio/"),
]
ENTRY = ("chitram_falcon/cli.py", "chitram_falcon/__main__.py", "asyncio/runners.py", "<frozen")
"""Frames under every sample (the command, ``asyncio.run``): not counted inclusively."""


def frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def where(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match["func"], match["file"].rsplit("site-packages/", 1)[-1]


def layer_of(file: str) -> str:
    for layer, prefix in LAYERS:
        if file.startswith(prefix):
            return layer
    return "other Python"


def summarise(path: Path, top: int) -> None:
    samples: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[stack] += int(count)
    busy = sum(samples.values()) or 1
    print(f"== {path.name}: {busy} busy samples")
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in samples.items():
        fs = frames(stack)
        if not fs:
            continue
        layers = set()
        for frame in fs:
            _, file = where(frame)
            if not file.startswith(ENTRY):
                layers.add(layer_of(file))
        for layer in layers:
            inclusive[layer] += n
        func, file = where(fs[-1])
        # The innermost Python frame; time in C below it (socket writes, the uvloop loop
        # itself) counts there: asyncio/runners.py's own samples are the native event loop.
        exclusive[layer_of(file)] += n
        own[f"{func} ({file})"] += n
    print(f"  {'layer':<16} {'inclusive':>9} {'innermost':>9}")
    for layer in [name for name, _ in LAYERS] + ["other Python"]:
        print(f"  {layer:<16} {inclusive[layer] / busy:>9.1%} {exclusive[layer] / busy:>9.1%}")
    print(f"  top {top} functions by own samples:")
    for name, n in own.most_common(top):
        print(f"    {n / busy:>6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        summarise(path, args.top)


if __name__ == "__main__":
    main()
