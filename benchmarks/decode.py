"""JPEG decoding per CPU core: the figure that sizes the loader of a GPU run.

A GPU consumes frames at a fixed rate (train-round and extract targets on one H100: 2,500 and 8,000 frames/s at
256x128); the loader's worker processes must decode at least that much, one core each. This measures, on one
core (one process, one torch thread), frames/s of the decoding the loaders use, `stages.data.frames.read_frame`
(PIL decode to RGB, bicubic resize when the size differs), against torchvision.io.decode_jpeg on the CPU from
bytes already in memory, on real 256x128 JPEGs of the synthetic network (or given frames), and prints the number
of loader workers each target needs.

    .venv/bin/python benchmarks/decode.py                     # makes 256x128 synthetic frames in a temp folder
    .venv/bin/python benchmarks/decode.py --frames data/synth --count 2000
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_jpeg

from stages.data.frames import read_frame
from stages.synth import run_synth

#: Frames/s one GPU consumes (issue targets for one H100 at 256x128): train-round and extract.
TARGETS = {"train-round (bf16)": 2500, "extract (bf16)": 8000}


def _frames(folder: Path, count: int) -> list[Path]:
    found = sorted(folder.rglob("*.jpg"))[:count]
    if not found:
        raise SystemExit(f"no .jpg frames under {folder}")
    return found


def _rate(work, items: list, repeats: int) -> float:
    work(items[: min(len(items), 20)])  # warm-up: file cache, first-call costs
    start = time.perf_counter()
    for _ in range(repeats):
        work(items)
    return repeats * len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, default=None, help="a folder of .jpg frames (default: make some)")
    parser.add_argument("--count", type=int, default=1000, help="frames to decode per pass")
    parser.add_argument("--size", default="256x128", help="HEIGHTxWIDTH the loader resizes to")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.frames or run_synth(Path(tmp) / "synth", seed=0, height=height, width=width, ids=20,
                                          test_ids=4, distractors=2)
        paths = _frames(Path(folder), args.count)
        blobs = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
        pil = _rate(lambda items: [read_frame(str(p), height=height, width=width) for p in items], paths, args.repeats)
        tv = _rate(lambda items: [decode_jpeg(b, mode=ImageReadMode.RGB) for b in items], blobs, args.repeats)
    load = os.getloadavg()[0]
    print(f"JPEG decoding on one core: {len(paths)} frames at {args.size}, {args.repeats} passes, load {load:.2f}")
    print("| decoder | frames/s per core | " + " | ".join(f"workers for {name} {rate:,}/s" for name, rate in TARGETS.items())
          + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    for name, rate in (("read_frame (PIL, the loaders' decoder)", pil), ("torchvision.io.decode_jpeg, CPU", tv)):
        print(f"| {name} | {rate:,.0f} | " + " | ".join(str(math.ceil(target / rate)) for target in TARGETS.values())
              + " |")


if __name__ == "__main__":
    main()
