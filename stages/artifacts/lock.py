"""Claims on the files a stage writes: checked writable before any work, one writer at a time, stale temporaries gone.

A stage declares its outputs with `writes`. Before it computes anything, the claim
1. refuses an output that is a directory or whose folder cannot be written (read-only file system,
   no permission), so a long computation never ends in a failed write of that kind;
2. takes an advisory lock (`fcntl.flock`) on the output's run directory (the folder above a
   `round_NNN` folder, else the output's own folder), so a second auxreid process writing there is
   refused with the holder's PID instead of silently replacing the first one's results; the lock
   file `.auxreid.lock` holds that PID and is removed on release; the kernel drops the lock when
   its holder dies, even by SIGKILL;
3. removes the temporaries of its own outputs (`.NAME.XXXXXXXX.tmp`, see `atomic_path`) that a
   killed writer left behind: with the lock held, no live writer can own them.

Under torchrun only rank 0 writes, so only rank 0 locks.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import inspect
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from stages.config import file_problem
from stages.errors import AuxReidError

LOCK_NAME = ".auxreid.lock"
_ROUND_DIR = re.compile(r"round_\d{3,}$")
#: What `tempfile.mkstemp` puts between `atomic_path`'s prefix and suffix.
_TEMP_MIDDLE = r"[a-z0-9_]{8}"

#: Lock folder -> [open lock file descriptor, how many claims of this process hold it].
_held: dict[Path, list[int]] = {}
#: Outputs of the claims in progress, newest last.
_claimed: list[Path] = []
#: Outputs of the claims the last stop signal (Ctrl-C, SIGTERM) unwound, named by the CLI's message.
_stopped: list[Path] = []


def lock_dir_for(path: str | Path) -> Path:
    """The folder whose lock covers `path`: a run directory for the files of its rounds, else the file's folder."""
    folder = Path(path).parent
    return folder.parent if _ROUND_DIR.match(folder.name) else folder


def check_writable(path: str | Path) -> None:
    """Refuse, before any work, an output that cannot be written where it is asked for.

    Raises:
        AuxReidError: the output is a directory, a folder on its way is a file, or the nearest
            existing folder is on a read-only file system or not writable by this user.
    """
    path = Path(path)
    if path.is_dir():
        raise AuxReidError(f"cannot write {path}: it is a directory; give the path of a file to write")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise AuxReidError(f"cannot write {path}: {folder} is a file, not a folder; give another path")
    reason = None
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        reason = errno.EROFS
    elif not os.access(folder, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        reason = errno.EACCES
    if reason is not None:
        raise AuxReidError(f"cannot write {path}: {os.strerror(reason)} ({folder}); make that folder writable "
                           "or write somewhere else; nothing was computed")


def temporaries_of(path: str | Path) -> list[Path]:
    """The temporaries `atomic_path` makes for `path` that exist now (left by a killed writer, or in use)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{_TEMP_MIDDLE}\.[A-Za-z0-9]+")
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def _lock(folder: Path, *, wanted: Path) -> None:
    """Take (or re-enter) the lock of `folder`; refuse with the holder's PID when another process has it."""
    if folder in _held:
        _held[folder][1] += 1
        return
    fd = acquire_lock_file(folder / LOCK_NAME, wanted=wanted, who="auxreid process", where=f"in {folder}")
    _held[folder] = [fd, 1]


def acquire_lock_file(lock_file: Path, *, wanted: Path, who: str, where: str) -> int:
    """Lock `lock_file` (made when missing) and write this PID into it; returns its descriptor, which holds the lock.

    Refuses with the holder's PID when another process has it: "cannot write WANTED: another WHO (PID n) is
    writing WHERE (lock LOCK_FILE); ...". A holder that removes the file between our open and our lock leaves us
    holding a dead inode, so the new file is locked instead.
    """
    while True:
        fd = _open_lock(lock_file, wanted=wanted)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AuxReidError(
                f"cannot write {wanted}: another {who} (PID {holder}) is writing {where} "
                f"(lock {lock_file}); wait for it to finish, or stop it, and run again"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # opened read-only: the lock holds, only the PID is not recorded
    return fd


def _open_lock(lock_file: Path, *, wanted: Path) -> int:
    """The lock file, opened (made when missing); anything but a regular file there is refused unopened.

    A folder, a FIFO or a dangling symlink in the lock's place is no lock (O_CREAT would make the link's
    target, a FIFO could block), and only the user can say whether it may go.
    """
    problem = file_problem(lock_file)
    if problem is not None and problem.kind != "missing":
        raise _lock_error(lock_file, wanted, problem.words)
    try:
        try:
            return os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            return os.open(lock_file, os.O_RDONLY)
    except OSError as exc:
        raise _lock_error(lock_file, wanted, f"cannot be opened ({os.strerror(exc.errno) if exc.errno else exc})") from None


def _lock_error(lock_file: Path, wanted: Path, words: str) -> AuxReidError:
    return AuxReidError(f"cannot write {wanted}: its lock file {lock_file} {words}; remove it (auxreid makes it "
                        "again as a plain file) and run again")


def _unlock(folder: Path) -> None:
    entry = _held[folder]
    entry[1] -= 1
    if entry[1]:
        return
    del _held[folder]
    try:
        (folder / LOCK_NAME).unlink(missing_ok=True)
    except OSError:
        pass
    os.close(entry[0])


def _main_rank() -> bool:
    return os.environ.get("RANK", "0").strip() in ("", "0")


@contextmanager
def claim_outputs(paths: Iterable[str | Path | None]) -> Iterator[list[Path]]:
    """Check, lock and clean the outputs `paths` (None entries are skipped) for the duration of the block.

    Raises:
        AuxReidError: an output cannot be written, or another process holds its lock.
    """
    outputs = [Path(p) for p in paths if p is not None]
    for path in outputs:
        check_writable(path)
    lock = _main_rank()
    folders: dict[Path, Path] = {}
    for path in outputs:
        folders.setdefault(Path(os.path.realpath(lock_dir_for(path))), path)
    created: list[Path] = []
    with ExitStack() as stack:
        if lock:
            for folder in sorted(folders):
                missing = [f for f in (folder, *folder.parents) if not f.exists()]
                folder.mkdir(parents=True, exist_ok=True)
                created += missing
                _lock(folder, wanted=folders[folder])
                stack.callback(_unlock, folder)
            for path in outputs:
                for stale in temporaries_of(path):
                    stale.unlink(missing_ok=True)
        _claimed.extend(outputs)
        stack.callback(_forget, outputs)
        try:
            yield outputs
        except BaseException as exc:
            if not isinstance(exc, Exception):
                _stopped.extend(p for p in outputs if p not in _stopped)
            stack.close()
            for folder in created:  # deepest first: folders made only for this claim go again
                try:
                    folder.rmdir()
                except OSError:
                    pass
            raise


def _forget(outputs: list[Path]) -> None:
    for path in outputs:
        _claimed.remove(path)


def claimed_outputs() -> list[Path]:
    """The outputs of the claims in progress in this process."""
    return list(_claimed)


def stopped_outputs() -> list[Path]:
    """The outputs whose claims a stop signal (KeyboardInterrupt, SIGTERM) unwound since the last call; then forgets them."""
    stopped = list(_stopped)
    _stopped.clear()
    return stopped


def writes(outputs: Callable[..., Iterable[str | Path | None]]) -> Callable:
    """Decorate a stage function so that `claim_outputs(outputs(**its arguments))` holds while it runs.

    `outputs` receives the call's arguments by name (defaults filled in) and returns the files written.
    """

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with claim_outputs(outputs(**bound.arguments)):
                return func(*args, **kwargs)

        return wrapper

    return decorate
