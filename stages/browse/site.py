"""`auxreid browse`: a run's clustering rounds as a static web site (default RUN/browse/), written atomically.

The site is built in a temporary folder beside the target (`.NAME.XXXXXXXX.tmp`) and renamed into place, so a
browser never sees half a site and a failed build leaves the previous one intact. A folder at the target is
replaced only when this command wrote it (its browse.json says so); anything else there is refused.

While it writes, the command holds a lock of its own beside the target (`.NAME.lock`, `fcntl.flock`), so a second
`auxreid browse` into the same folder is refused with the holder's PID; with the lock held it removes what a killed
build left (its temporary folders). It does not take the run directory's lock: browsing the finished rounds while
a later round trains is what the site is for, and it writes nothing the stages read or write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from stages import __version__
from stages.artifacts.lock import acquire_lock_file, check_writable
from stages.browse.assets import SITE_CSS
from stages.browse.collect import choose_rounds, collect, parse_rounds
from stages.browse.render import render_site
from stages.browse.thumbs import Thumbs
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress
from stages.rundir import RunDir

#: The manifest that marks a folder as a browse site (and says what it holds).
MANIFEST = "browse.json"
MANIFEST_TOOL = "auxreid browse"
SITE_FORMAT = 1


@dataclass(frozen=True)
class BrowseSite:
    """What `run_browse` wrote.

    Attributes:
        path: the site's folder (open path/index.html).
        rounds: the clustering rounds shown; evaluated: the rounds with an evaluation page.
        files: files in the site; bytes: their total size; disk: the space they take on disk (whole blocks);
        thumbnails: JPEGs, made: those decoded anew (the others linked from the site it replaced).
    """

    path: Path
    rounds: list[int]
    evaluated: list[int]
    files: int
    bytes: int
    disk: int
    thumbnails: int
    made: int


def default_out(run: RunDir) -> Path:
    return run.path / "browse"


def is_site(folder: Path) -> bool:
    """True when `folder` holds a browse.json this command wrote."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("tool") == MANIFEST_TOOL


def check_target(out: Path) -> None:
    """Refuse a target that exists and is not a site this command wrote (an empty folder is fine).

    Raises:
        AuxReidError: one line naming the folder.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise AuxReidError(f"{out} exists and is not a folder; give another --out")
    if out.is_dir() and any(out.iterdir()) and not is_site(out):
        raise AuxReidError(f"{out} exists and is not a site written by `auxreid browse` (it has no {MANIFEST}); "
                           "give another --out, or remove the folder")
    check_writable(out.parent / MANIFEST)


@contextmanager
def _site_lock(out: Path):
    """Hold `.NAME.lock` beside the site `out`; refuse when another process holds it. Removes the temporary folders
    a killed build of `out` left behind once it holds the lock.

    Raises:
        AuxReidError: another process holds the lock, or the lock file is not a regular file.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_file = out.parent / f".{out.name}.lock"
    fd = acquire_lock_file(lock_file, wanted=out, who="`auxreid browse`", where="it")
    try:
        name = re.escape(out.name)
        leftover = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.tmp|\.{name}\.old\.[a-z0-9_]{{8}}")
        for path in out.parent.iterdir():
            if leftover.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
        yield
    finally:
        lock_file.unlink(missing_ok=True)
        os.close(fd)


def _folder_size(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, bytes on disk) under `folder`."""
    files = size = disk = 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            files += 1
            size += info.st_size
            disk += info.st_blocks * 512
    return files, size, disk


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_in(build: Path, out: Path) -> None:
    """Rename the finished `build` to `out`, moving an earlier site aside first and removing it after."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.rename(out, old / out.name)
    try:
        os.rename(build, out)
    except OSError:
        if old is not None:
            os.rename(old / out.name, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_browse(run: str | Path | RunDir, *, rounds: str | list[int] | None = None, out: str | Path | None = None,
               progress: Progress | None = None) -> BrowseSite:
    """Build the browse site of `run`.

    Args:
        run: the run (name or path, or a RunDir).
        rounds: the rounds to show ("1,3,5" or a list); default every round with clusters.h5 or eval.h5.
        out: the site's folder; default RUN/browse.
        progress: receives progress and stale-input warnings.

    Returns:
        What was written (BrowseSite).

    Raises:
        AuxReidError: no run, no round with clusters, an unreadable artifact, missing frames, a target folder not
            written by this command, or a failed write (one line each).
    """
    progress = progress or NullProgress()
    run = run if isinstance(run, RunDir) else RunDir.resolve(run)
    wanted = parse_rounds(rounds) if isinstance(rounds, str) or rounds is None else sorted(set(rounds))
    clustered, evaluated = choose_rounds(run, wanted)
    out = Path(out) if out is not None else default_out(run)
    check_target(out)
    with _site_lock(out):
        check_target(out)  # again, now that no other browse writes here
        view = collect(run, clustered, evaluated, progress=progress)
        build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            os.chmod(build, 0o777 & ~_umask())
            made, thumbs = _build(view, build, reuse=out if is_site(out) else None, progress=progress)
            files, size, _ = _folder_size(build)
            manifest = {"tool": MANIFEST_TOOL, "format": SITE_FORMAT, "package_version": __version__,
                        "run": str(run.path), "rounds": clustered, "evaluated": evaluated, "files": files + 1,
                        "bytes": size, "thumbnails": len(thumbs),
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            (build / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
            files, size, disk = _folder_size(build)
            _swap_in(build, out)
        except OSError as exc:
            raise AuxReidError(f"cannot write {out}: {exc.strerror or exc}; nothing was replaced") from None
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
    return BrowseSite(path=out, rounds=clustered, evaluated=evaluated, files=files, bytes=size, disk=disk,
                      thumbnails=len(thumbs), made=made)


def _build(view, build: Path, *, reuse: Path | None, progress: Progress) -> tuple[int, Thumbs]:
    """Write the pages, the stylesheet and the thumbnails into `build`."""
    thumbs = Thumbs()
    pages: list[str] = []
    task = "browse: pages"
    progress.start(task)

    def emit(path: str, text: str) -> None:
        target = build / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        pages.append(path)
        progress.advance(task)

    emit("site.css", SITE_CSS)
    render_site(view, thumbs, emit)
    progress.done(task, f"{len(pages)} files")
    made = thumbs.write(build, reuse=reuse, progress=progress)
    return made, thumbs
