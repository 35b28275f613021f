"""Bad writes, signals, locks, run names, frames that are not files, umask: one line, exit code, nothing lost.

Every case checks the exit code, a single `error:` line naming the file, no traceback, and that the
run's previous files are byte-identical afterwards (SHA-256 of every file). The run is a tiny
synthetic one built once per module in a world-readable folder (so a case can act as another user
when the tests run as root, where permissions would not bite); each case works on its own copy.
Kill cases run the stage in a child process paused at the rename of the named output (its
temporary complete beside it) and signal it there.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auxreid_cli.main import app
from helpers_runs import tiny_config
from stages.artifacts.lock import LOCK_NAME, claim_outputs, temporaries_of

runner = CliRunner()

TINY_CONFIG = tiny_config(fixed_iters=2, every=1)

#: Runs a CLI command in a child that pauses (120 s) just before renaming the output named PAUSE_AT into
#: place, after touching PAUSE_MARK: the temporary is complete and the lock held, so a signal lands mid-write.
PAUSE_CHILD = r"""
import os, sys, time
target, mark = os.environ["PAUSE_AT"], os.environ["PAUSE_MARK"]
real = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == target:
        open(mark, "w").close()
        time.sleep(120)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from auxreid_cli.main import app
app(sys.argv[1:], prog_name="auxreid")
"""

NOBODY = 65534


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def digest(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file under `folder` by relative path; left out: temporaries and lock files (checked
    on their own), the run's command log (log.txt, appended by every command) and `skip` names."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (LOCK_NAME, "log.txt", *skip) and not _TEMPORARY.fullmatch(p.name)}


_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+")


def unchanged(folder: Path, before: dict[str, str]) -> bool:
    """Every file of `before` is still there, byte-identical (files a stage adds beside them are not compared)."""
    after = digest(folder)
    return {name: after.get(name) for name in before} == before


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if _TEMPORARY.fullmatch(p.name)]


def one_error_line(output: str, *needles: str) -> str:
    """The single `error:` line of `output` (asserted: one, no traceback, holding every needle)."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], (needle, output)
    return lines[0]


def evaluate_saved(run: Path) -> tuple:
    """Re-evaluate round 1 from the features saved in a copy of its eval.h5 (no model, no images: numpy only),
    replacing eval.h5 (an output never replaces its own input, so the features are read from the copy)."""
    eval_h5 = run / "round_001" / "eval.h5"
    saved = run / "saved_eval.h5"
    if not saved.exists():
        shutil.copy2(eval_h5, saved)
    return "evaluate", "--features", saved, "--aux", run / "aux.h5", "--out", eval_h5, "--force"


def refused(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    return one_error_line(result.output, *needles)


@pytest.fixture(scope="module")
def base():
    """A world-readable folder: a tiny synthetic dataset, its config, and run `base` through round 1."""
    from stages.synth import run_synth

    root = Path(tempfile.mkdtemp(prefix="auxreid-bad-writes-"))
    root.chmod(0o755)
    run_synth(root / "synth", layout="duke", seed=0, ids=12, test_ids=6, distractors=3, cams=4, min_frames=2,
              max_frames=4)
    (root / "tiny.yaml").write_text(TINY_CONFIG)
    run = root / "runs" / "base"
    steps = [("init", run, "--config", root / "tiny.yaml", "--set", f"data.root={root / 'synth'}"),
             ("extract", run, "--round", "1"), ("mine-aux", run), ("cluster", run, "--round", "1"),
             ("train-round", run, "--round", "1"), ("evaluate", run, "--round", "1"), ("report", run)]
    for step in steps:
        result = invoke(*step)
        assert result.exit_code == 0, (step, result.output)
    for path in root.rglob("*"):
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def run(base):
    """This case's own copy of the base run (world-readable, like the base)."""
    copies = base / "copies"
    copies.mkdir(exist_ok=True, mode=0o755)
    folder = Path(tempfile.mkdtemp(dir=copies))
    folder.chmod(0o755)
    shutil.copytree(base / "runs" / "base", folder / "run")
    yield folder / "run"
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def file_size_limit(limit: int):
    """`ulimit -f` for this process only, while the block runs (Python ignores SIGXFSZ: writes fail EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextmanager
def unprivileged():
    """Act as an ordinary user while the block runs, so that folder permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


# --- class 3: the output location is checked before any work; a failed write is one line ----------------------

def test_out_is_a_directory_is_refused_before_evaluating(run, tmp_path):
    before = digest(run)
    result = invoke("evaluate", "--features", run / "round_001" / "eval.h5", "--out", run / "round_001")
    refused(result, f"cannot write {run / 'round_001'}: it is a directory")
    assert digest(run) == before


def test_out_is_a_directory_is_refused_before_extracting(run, tmp_path):
    before = digest(run)
    result = invoke("extract", "--model", run / "round_000" / "model.pt", "--out", tmp_path)
    refused(result, f"cannot write {tmp_path}: it is a directory")
    assert digest(run) == before


def test_out_is_a_directory_is_refused_before_clustering(run, tmp_path):
    before = digest(run)
    result = invoke("cluster", "--features", run / "round_001" / "features.h5", "--out", tmp_path)
    refused(result, f"cannot write {tmp_path}: it is a directory")
    assert digest(run) == before


def test_report_out_is_a_directory_leaves_report_md(run, tmp_path):
    before = digest(run)
    refused(invoke("report", run, "--out", tmp_path), f"cannot write {tmp_path}: it is a directory")
    assert digest(run) == before


def test_out_below_a_file_is_refused(run, tmp_path):
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    before = digest(run)
    result = invoke("evaluate", "--features", run / "round_001" / "eval.h5", "--out", blocker / "eval.h5")
    refused(result, f"cannot write {blocker / 'eval.h5'}: {blocker} is a file, not a folder")
    assert digest(run) == before


def test_eval_json_that_is_a_directory_is_refused_before_evaluating(run):
    (run / "round_001" / "eval.json").unlink()
    (run / "round_001" / "eval.json").mkdir()
    before = digest(run)
    refused(invoke("evaluate", run, "--round", "1"), f"cannot write {run / 'round_001' / 'eval.json'}: it is a directory")
    assert digest(run) == before


def test_read_only_round_folder_is_refused_before_clustering(run):
    folder = run / "round_001"
    before = digest(run)
    folder.chmod(0o555)
    run.chmod(0o777)
    try:
        with unprivileged():
            result = invoke("cluster", run, "--round", "1")
    finally:
        folder.chmod(0o755)
    refused(result, f"cannot write {folder / 'clusters.h5'}: Permission denied ({folder})", "nothing was computed")
    assert digest(run) == before and not temporaries(run)


def test_read_only_run_folder_is_refused_before_mining(run):
    before = digest(run)
    run.chmod(0o555)
    try:
        with unprivileged():
            result = invoke("mine-aux", run)
    finally:
        run.chmod(0o755)
    refused(result, f"cannot write {run / 'aux.h5'}: Permission denied ({run})")
    assert digest(run) == before


def test_permission_lost_at_write_time_is_one_line(run, monkeypatch):
    """A folder that becomes unwritable after the check: mkstemp's EACCES becomes the one-line write error."""
    import stages.artifacts.lock as lock

    monkeypatch.setattr(lock, "check_writable", lambda path: None)
    folder = run / "round_001"
    run.chmod(0o777)
    before = digest(run)
    folder.chmod(0o555)
    try:
        with unprivileged():
            result = invoke("cluster", run, "--round", "1")
    finally:
        folder.chmod(0o755)
    refused(result, f"cannot write {folder / 'clusters.h5'}: Permission denied", "the previous file, if any, is intact")
    assert digest(run) == before and not temporaries(run)


@pytest.mark.parametrize("stage, output", [
    ("init", "round_000/model.pt"), ("extract", "round_001/features.h5"), ("cluster", "round_001/clusters.h5"),
    ("evaluate", "round_001/eval.h5"), ("report", "report.png"),
])
def test_file_size_limit_at_write_is_one_line_and_keeps_the_old_file(run, base, stage, output):
    """`ulimit -f 8` (8 KiB): HDF5 files, model.pt (torch.save) and the figure all fail the same way."""
    args = {"init": ("init", run, "--force", "--config", base / "tiny.yaml", "--set", f"data.root={base / 'synth'}"),
            "extract": ("extract", run, "--round", "1"), "cluster": ("cluster", run, "--round", "1"),
            "evaluate": evaluate_saved(run), "report": ("report", run)}
    before = digest(run)
    with file_size_limit(8192):
        result = invoke(*args[stage])
    refused(result, f"cannot write {run / output}: File too large", "raise the file size limit (ulimit -f)")
    assert digest(run) == before and not temporaries(run)


# --- class 4: eval.h5 is the one source, eval.json its copy -------------------------------------------------------

def test_eval_json_is_derived_from_eval_h5(run):
    import json

    from stages.artifacts.h5 import file_sha256, read_artifact

    record = json.loads((run / "round_001" / "eval.json").read_text())
    artifact = read_artifact(run / "round_001" / "eval.h5")
    assert record["eval_h5_sha256"] == file_sha256(run / "round_001" / "eval.h5")
    assert record["mAP"] == float(artifact["metrics/mAP"]) and record["rank1"] == float(artifact["metrics/cmc"][0])


def test_eval_json_failure_after_eval_h5_leaves_no_disagreeing_copy(run, monkeypatch):
    import stages.evaluate as evaluate

    real = evaluate.atomic_path

    @contextmanager
    def full_disk_for_json(path, *args, **kwargs):
        with real(path, *args, **kwargs) as tmp:
            yield tmp
            if Path(path).suffix == ".json":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(evaluate, "atomic_path", full_disk_for_json)
    result = invoke(*evaluate_saved(run), "--set", "evaluate.scp=false")
    refused(result, f"cannot write {run / 'round_001' / 'eval.json'}: No space left on device",
            f"{run / 'round_001' / 'eval.h5'} was written and holds the numbers")
    assert not (run / "round_001" / "eval.json").exists() and not temporaries(run)
    report = invoke("report", run)
    assert report.exit_code == 0, report.output
    from stages.artifacts.h5 import read_artifact
    from stages.report import collect_rows

    assert collect_rows(run)[1].mAP == float(read_artifact(run / "round_001" / "eval.h5")["metrics/mAP"])


# --- class 7 and 8: signals mid-write, stale temporaries, one writer at a time -------------------------------------

STAGE_WRITES = {
    "init": (lambda run, base: ("init", run, "--force", "--config", base / "tiny.yaml", "--set",
                                f"data.root={base / 'synth'}"), "round_000/model.pt"),
    "mine-aux": (lambda run, base: ("mine-aux", run), "aux.h5"),
    "extract": (lambda run, base: ("extract", run, "--round", "1"), "round_001/features.h5"),
    "cluster": (lambda run, base: ("cluster", run, "--round", "1"), "round_001/clusters.h5"),
    "train-round": (lambda run, base: ("train-round", run, "--round", "1"), "round_001/model.pt"),
    "evaluate": (lambda run, base: ("evaluate", run, "--round", "1"), "round_001/eval.h5"),
    "report": (lambda run, base: ("report", run), "report.png"),
}


def _paused_child(args, output: Path, mark: Path) -> subprocess.Popen:
    env = {**os.environ, "PAUSE_AT": output.name, "PAUSE_MARK": str(mark)}
    child = subprocess.Popen([sys.executable, "-c", PAUSE_CHILD, *map(str, args)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not mark.exists():
        if child.poll() is not None:
            pytest.fail(f"the stage ended before writing {output}: {child.communicate()}")
        assert time.monotonic() < deadline, f"the stage never reached the write of {output}"
        time.sleep(0.05)
    return child


@pytest.mark.parametrize("stage", list(STAGE_WRITES))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_signal_mid_write_keeps_the_old_file_and_leaves_no_temporary(run, base, tmp_path, stage, signum):
    make_args, relative = STAGE_WRITES[stage]
    args, output = make_args(run, base), run / relative
    before = digest(run, skip=("metrics.jsonl",))
    child = _paused_child(args, output, tmp_path / "mark")
    try:
        (temporary,) = temporaries_of(output)
        second = invoke(*args)  # a second writer while the first holds the run: refused, the temporary left alone
        refused(second, f"cannot write {run}{os.sep}", f"another auxreid process (PID {child.pid}) is writing in {run} "
                        f"(lock {run / LOCK_NAME})")
        assert temporary.exists()
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert unchanged(run, before)
    if signum == signal.SIGTERM:
        assert child.returncode == 143, stderr
        assert "Traceback" not in stderr
        (line,) = [line for line in stderr.splitlines() if "terminated" in line]
        assert line.startswith("terminated (SIGTERM) while writing ") and str(output) in line
        assert line.endswith("finished artifacts are intact, unfinished ones were not written")
        assert not temporary.exists() and not temporaries(run) and not (run / LOCK_NAME).exists()
        return
    assert child.returncode == -signal.SIGKILL and temporary.exists()
    again = invoke(*args)  # the kernel dropped the dead writer's lock; its temporary goes
    assert again.exit_code == 0, again.output
    assert not temporaries(run) and not (run / LOCK_NAME).exists() and output.stat().st_size > 0


def test_lock_names_the_holder_and_is_released(tmp_path):
    out = tmp_path / "run" / "round_001" / "clusters.h5"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom stages.artifacts.lock import claim_outputs\n"
        f"with claim_outputs([{str(out)!r}]):\n    print('held', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert (tmp_path / "run" / LOCK_NAME).read_text().strip() == str(holder.pid)
        with pytest.raises(Exception, match=rf"another auxreid process \(PID {holder.pid}\) is writing in "
                                            rf"{re.escape(str(tmp_path / 'run'))}"):
            with claim_outputs([tmp_path / "run" / "aux.h5"]):
                pass
    finally:
        holder.kill()
        holder.wait()
    with claim_outputs([out]):
        assert (tmp_path / "run" / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_torchrun_ranks_other_than_0_take_no_lock(tmp_path, monkeypatch):
    """Under torchrun every rank runs train-round but only rank 0 writes: the others must not be refused."""
    out = tmp_path / "run" / "round_001" / "model.pt"
    with claim_outputs([out]):
        monkeypatch.setenv("RANK", "1")
        with claim_outputs([out]) as claimed:
            assert claimed == [out]


# --- class 9: run names and frames that are not files -------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", "", ".", "foo/..", "bad name"])
def test_init_refuses_unusable_run_names(base, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = invoke("init", name, "--config", base / "tiny.yaml", "--set", f"data.root={base / 'synth'}")
    refused(result, f"run name {name!r} is not a usable run name")
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "config.yaml").exists()


def test_init_refuses_the_artifacts_root_itself(base, tmp_path):
    root = tmp_path / "artifacts"
    result = invoke("init", root, "--config", base / "tiny.yaml", "--set", f"data.root={base / 'synth'}")
    refused(result, f"is the artifacts folder {root} itself")
    assert not root.exists()


def test_named_pipe_among_the_frames_is_refused_not_waited_on(run, base, tmp_path):
    data = tmp_path / "synth"
    shutil.copytree(base / "synth", data)
    frame = sorted((data / "train").rglob("*.jpg"))[0] if list((data / "train").rglob("*.jpg")) else \
        sorted(p for p in (data / "train").rglob("*") if p.is_file())[0]
    frame.unlink()
    os.mkfifo(frame)
    before = digest(run)
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("extract blocked on the named pipe"))
    signal.alarm(120)
    try:
        result = invoke("extract", "--model", run / "round_000" / "model.pt", "--out", tmp_path / "f.h5",
                        "--root", data)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    refused(result, "cannot read frame", frame.name, "it is a named pipe, not an image file")
    assert digest(run) == before and not (tmp_path / "f.h5").exists()


# --- class 10: friendly options ------------------------------------------------------------------------------------

def test_evaluate_names_a_missing_aux_file(run, tmp_path):
    before = digest(run)
    result = invoke("evaluate", run, "--round", "1", "--aux", tmp_path / "missing.h5")
    line = refused(result, f"--aux {tmp_path / 'missing.h5'} does not exist")
    assert "pass --aux FILE" not in line and digest(run) == before


def test_report_without_out_writes_run_report_png(run):
    (run / "report.png").unlink()
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    assert (run / "report.png").read_bytes().startswith(b"\x89PNG")


# --- class 11: artifacts honour the umask -------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_artifacts_get_the_mode_the_umask_allows(run, umask, mode):
    previous = os.umask(umask)
    try:
        result = invoke(*evaluate_saved(run))
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    for name in ("eval.h5", "eval.json"):
        assert (run / "round_001" / name).stat().st_mode & 0o777 == mode, name


# --- class 12: messages -------------------------------------------------------------------------------------------

def test_error_after_progress_stands_alone_on_a_terminal(run, monkeypatch):
    """On a terminal the bars are erased before the error: no leftover bar, no blank line above the message."""
    import io

    from rich.console import Console

    import auxreid_cli.common as common

    screen = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=screen, force_terminal=True, width=120))
    before = digest(run, skip=("metrics.jsonl",))
    with file_size_limit(8192):
        result = invoke("extract", run, "--round", "1")
    assert result.exit_code == 1 and digest(run, skip=("metrics.jsonl",)) == before
    raw = screen.getvalue()
    assert "extract train" in raw and "Traceback" not in raw
    last_erase = raw.rindex("\x1b[2K")
    assert raw[last_erase - 4:last_erase] == "\x1b[1A", repr(raw[-400:])  # the bar's line is taken back
    rest = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw[last_erase:])
    assert rest.startswith("error: cannot write") and rest.count("\n") == 1 and "File too large" in rest, repr(rest)


def test_zero_cluster_warning_once_without_the_eps_just_used(run):
    result = invoke("cluster", run, "--round", "1", "--set", "cluster.eps_mode=fixed", "--set", "cluster.eps=0.000000001",
                    "--set", "cluster.min_samples=50")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert text.count("has no clusters") == 1, result.output
    advice = text[text.index("has no clusters"):text.index("then re-run `auxreid cluster`")]
    assert "raise cluster.eps above 1e-09" in advice and "cluster.eps=1e-09" not in advice
    assert "variant cluster.eps_mode=fixed,cluster.eps=1e-09,cluster.min_samples=50 (" in text  # beside round 1
