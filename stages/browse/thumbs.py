"""Thumbnails of the browse site: one small JPEG per frame shown, under browse/thumbs/, shared by every page.

A thumbnail is named by a stable id: a hash of the frame's absolute path, its size and modification time, and the
thumbnail format. Pages of every round point at the same file, and a rebuild of the site links the thumbnails of
the site it replaces instead of decoding the frames again (a frame that changed gets a new id).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from stages.data.frames import DECODE_ERRORS, open_regular
from stages.errors import AuxReidError
from stages.progress import Progress

#: Thumbnail width and height in pixels (re-id crops are about 1:2), JPEG quality.
THUMB_WIDTH, THUMB_HEIGHT, THUMB_QUALITY = 48, 96, 80
#: The site's folder of thumbnails.
THUMBS_DIR = "thumbs"


class Thumbs:
    """The frames the pages show, each with its thumbnail's site-relative path (`add` before `write`)."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}  # absolute frame path -> "thumbs/ab/abcdef....jpg"
        self._missing: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self._paths)

    def add(self, frame: str, owner: str) -> str:
        """The site-relative path of `frame`'s thumbnail; `owner` (e.g. "train tracklet 0001/0001") names a missing one."""
        known = self._paths.get(frame)
        if known is not None:
            return known
        try:
            info = os.stat(frame)
            version = f"{info.st_size}\0{info.st_mtime_ns}" if stat.S_ISREG(info.st_mode) else ""
        except OSError:
            version = ""
        if not version:
            self._missing.append((frame, owner))
        key = f"{frame}\0{version}\0{THUMB_WIDTH}x{THUMB_HEIGHT}q{THUMB_QUALITY}"
        thumb_id = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        path = f"{THUMBS_DIR}/{thumb_id[:2]}/{thumb_id}.jpg"
        self._paths[frame] = path
        return path

    def check(self) -> None:
        """Refuse when a frame the pages show is missing or not a regular file.

        Raises:
            AuxReidError: naming the first such frame, whose tracklet it is, and how many there are.
        """
        if not self._missing:
            return
        frame, owner = self._missing[0]
        more = len(self._missing) - 1
        raise AuxReidError(f"frame {frame} of {owner} is missing or not a regular file"
                           + (f" (and {more} more frame{'s' if more != 1 else ''})" if more else "")
                           + "; the site shows the run's frames: put the dataset back where the run found it, or set "
                           "data.root in the run's config.yaml to where it is now")

    def write(self, site: Path, *, reuse: Path | None, progress: Progress, workers: int | None = None) -> int:
        """Write every thumbnail under `site`, linking those `reuse` (an earlier site) already holds.

        Returns:
            The number of thumbnails decoded anew (the rest were linked or copied).

        Raises:
            AuxReidError: a frame that cannot be decoded (named with the reason).
        """
        self.check()
        items = sorted(self._paths.items(), key=lambda item: item[1])
        for folder in sorted({path.rsplit("/", 1)[0] for _, path in items}):
            (site / folder).mkdir(parents=True, exist_ok=True)
        task = "browse: thumbnails"
        progress.start(task, total=len(items))
        fresh = [(frame, path) for frame, path in items if not _reused(site, reuse, path)]
        progress.advance(task, len(items) - len(fresh))
        workers = workers or min(4, os.cpu_count() or 1)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(lambda item: make_thumbnail(item[0], site / item[1]), fresh):
                progress.advance(task)
        progress.done(task, f"{len(items)} thumbnails, {len(fresh)} made, {len(items) - len(fresh)} reused")
        return len(fresh)

    def paths(self) -> Iterable[str]:
        return self._paths.values()


def _reused(site: Path, reuse: Path | None, path: str) -> bool:
    """Link (or copy) `path` from the earlier site `reuse` into `site`; False when it has none."""
    if reuse is None:
        return False
    old = reuse / path
    if not old.is_file():
        return False
    try:
        os.link(old, site / path)
    except OSError:
        try:
            shutil.copyfile(old, site / path)
        except OSError:
            return False
    return True


def make_thumbnail(frame: str, out: Path) -> None:
    """Decode `frame` and write it as a THUMB_WIDTH x THUMB_HEIGHT JPEG at `out`.

    Raises:
        AuxReidError: the frame cannot be read or decoded (named with the reason).
    """
    try:
        with open_regular(frame) as handle, Image.open(handle) as image:
            image.draft("RGB", (THUMB_WIDTH, THUMB_HEIGHT))  # JPEG: decode at a reduced scale, much faster
            small = image.convert("RGB").resize((THUMB_WIDTH, THUMB_HEIGHT), Image.BICUBIC)
    except DECODE_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuxReidError(f"cannot read frame {frame}: {reason}") from None
    small.save(out, format="JPEG", quality=THUMB_QUALITY, optimize=True)
