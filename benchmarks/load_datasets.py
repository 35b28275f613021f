"""Load time of the dataset loaders on fake trees of realistic size (empty image files), against a glob baseline.

Duke: 2,000 tracklets x 30 frames (60,000 files), loaded by `load_duke` (one scandir per folder) and by
the usual glob-per-tracklet reader (torchreid style) as the baseline. The same frames through a CSV
manifest. MARS: the real sizes (8,298 train + 12,180 test tracks, ~50 frames each, ~1M names in the
lists); only the first frame of each track is written, the only one the loader checks.
Run: .venv/bin/python benchmarks/load_datasets.py
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io

from stages.data.duke import load_duke
from stages.data.manifest import load_manifest
from stages.data.mars import load_mars

TRACKLETS = 2000
FRAMES = 30
MARS_TRAIN, MARS_TEST, MARS_FRAMES = 8298, 12180, 50
_NAME = re.compile(r"(\d+)_?C(\d+)_?F(\d+)_?X(\d+)\.jpg")


def write_duke(root: Path) -> None:
    for i in range(TRACKLETS):
        split = ("train", "query", "gallery")[i % 3]
        pid, cam = i // 3 + 1, i % 8 + 1
        folder = root / split / f"{pid:04d}" / f"{i:04d}"
        folder.mkdir(parents=True)
        for k in range(FRAMES):
            open(folder / f"{pid:04d}_C{cam}_F{k + 1:04d}_X{1000 + 12 * k:05d}.jpg", "wb").close()


def write_manifest(root: Path) -> Path:
    lines = ["path,tracklet,camera,split,person_id,frame"]
    for split_dir in sorted((root / "duke").iterdir()):
        for path in sorted(split_dir.glob("*/*/*.jpg")):
            pid, cam, _, x = _NAME.fullmatch(path.name).groups()
            lines.append(f"{path.relative_to(root)},{path.parent.name},{cam},{split_dir.name},{int(pid)},{x}")
    manifest = root / "frames.csv"
    manifest.write_text("# fps = 59.94\n" + "\n".join(lines) + "\n")
    return manifest


def glob_baseline(root: Path) -> int:
    """The usual reader: glob the tracklet folders, glob each one's frames, parse and sort them."""
    frames = 0
    for split in ("train", "query", "gallery"):
        for track_dir in sorted(glob.glob(os.path.join(root, split, "*", "*"))):
            paths = glob.glob(os.path.join(track_dir, "*.jpg"))
            parsed = sorted((int(_NAME.fullmatch(os.path.basename(p)).group(3)), p) for p in paths)
            frames += len(parsed)
    return frames


def write_mars(root: Path) -> None:
    info = root / "info"
    info.mkdir(parents=True)
    for split, count, key in (("train", MARS_TRAIN, "track_train_info"), ("test", MARS_TEST, "track_test_info")):
        names, rows = [], []
        for t in range(count):
            pid, cam = t // 13 + 1, t % 6 + 1
            first = len(names) + 1
            names.extend(f"{pid:04d}C{cam}T{t:04d}F{k + 1:03d}.jpg" for k in range(MARS_FRAMES))
            rows.append((first, len(names), pid, cam))
            folder = root / f"bbox_{split}" / f"{pid:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            open(folder / names[first - 1], "wb").close()
        (info / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        scipy.io.savemat(info / f"tracks_{split}_info.mat", {key: np.array(rows, dtype=np.float64)})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.arange(1, 1981, dtype=np.float64)[None]})


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_duke(root / "duke")
        manifest = write_manifest(root)
        write_mars(root / "mars")
        baseline = best_of(lambda: glob_baseline(root / "duke"))
        rows = [
            ("duke: glob per tracklet (baseline)", TRACKLETS * FRAMES, baseline),
            ("duke: load_duke (scandir)", TRACKLETS * FRAMES, best_of(lambda: load_duke(str(root / "duke"), dense_step=0))),
            ("duke: load_duke dense_step=8", TRACKLETS * FRAMES, best_of(lambda: load_duke(str(root / "duke"), dense_step=8))),
            ("manifest: same frames, CSV", TRACKLETS * FRAMES, best_of(lambda: load_manifest(str(manifest)))),
            ("mars: full-size name lists", (MARS_TRAIN + MARS_TEST) * MARS_FRAMES, best_of(lambda: load_mars(str(root / "mars")))),
        ]
    print(f"{'loader':40s} {'frames':>10s} {'seconds':>8s} {'frames/s':>10s} {'vs baseline':>12s}")
    for name, frames, seconds in rows:
        print(f"{name:40s} {frames:>10,d} {seconds:>8.3f} {frames / seconds:>10,.0f} {baseline / seconds:>11.2f}x")


if __name__ == "__main__":
    main()
