"""What a round leaves besides its model: the resumable in-round checkpoint and the lines of RUN/metrics.jsonl.

They are hooks of the loop in the way of fast-reid's trainer: the loop calls them after each step, and the
checkpoint also restores a killed round, so a resumed round ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from stages.artifacts.h5 import atomic_path, file_sha256, write_error
from stages.artifacts.model_file import save_torch
from stages.artifacts.weights_file import load_weights_only
from stages.errors import AuxReidError
from stages.progress import Progress
from stages.training.loop import LoopState
from stages.training.mean_teacher import MeanTeacher

#: Format tag of the in-round checkpoint (`model.checkpoint.pt`).
CHECKPOINT_FORMAT = "auxreid-train-checkpoint"


def checkpoint_path_for(out_path: str | Path) -> Path:
    """The resumable in-round checkpoint that belongs to a model.pt: `model.checkpoint.pt` beside it."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.checkpoint{out_path.suffix}")


def pending_records_path_for(out_path: str | Path) -> Path:
    """Where a round's metrics records wait until its model.pt is in place: `model.checkpoint.jsonl` beside it."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.checkpoint.jsonl")


def _damaged(path: Path) -> AuxReidError:
    return AuxReidError(f"{path} cannot be read as a train-round checkpoint (damaged or cut short); delete it or run "
                        "without --resume")


class RoundCheckpoint:
    """The round's state every `every` iterations, atomically, beside its model.pt; refused for another round.

    The round, iteration count and config alone let a checkpoint made on other clusters, or from another
    previous model, continue as if it were this round's; so it also records the SHA-256 of both inputs.

    Args:
        path: the checkpoint file (`checkpoint_path_for` the round's model.pt).
        round, iterations, config_hash: what a checkpoint must have been made for to be resumed.
        inputs: {"clusters": clusters.h5, "model": the previous round's model.pt}, the files it must have been
            made from (hashed when first needed).
        every: save every this many iterations (0: never; the round's model.pt is the end).
        enabled: only rank 0 writes.
    """

    def __init__(self, path: Path, *, round: int, iterations: int, config_hash: str, inputs: Mapping[str, Path],
                 every: int, enabled: bool) -> None:
        self.path, self.round, self.iterations, self.config_hash = path, round, iterations, config_hash
        self.inputs, self.every, self.enabled = dict(inputs), every, enabled
        self._digests: dict[str, str] | None = None

    def digests(self) -> dict[str, str]:
        """role -> SHA-256 of the round's input files now (computed once)."""
        if self._digests is None:
            self._digests = {role: file_sha256(path) for role, path in self.inputs.items()}
        return self._digests

    def start(self, net: MeanTeacher, state: LoopState, *, resume: bool, progress: Progress) -> None:
        """Resume from the checkpoint when asked and present; otherwise say why none is used."""
        if resume and self.path.is_file():
            self._load(net, state)
        elif resume:
            progress.warn(f"--resume: no checkpoint {self.path}; training round {self.round} from its start")
        elif self.path.is_file() and self.enabled:
            progress.warn(f"{self.path} from an interrupted run is ignored (pass --resume to continue it)")

    def after_step(self, net: MeanTeacher, state: LoopState) -> None:
        if self.enabled and self.every and state.iteration % self.every == 0 and state.iteration < self.iterations:
            self._save(net, state)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _save(self, net: MeanTeacher, state: LoopState) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT, "round": self.round, "iteration": state.iteration, "step": state.step,
            "iterations": self.iterations, "config_hash": self.config_hash,
            "student": net.student.model.state_dict(), "teacher": net.teacher.model.state_dict(),
            "optimizer": net.optimizer.state_dict(), "loss_sums": dict(state.loss_sums),
            "precision_sum": state.precision_sum, "precision_count": state.precision_count,
            "frames": state.frames, "seconds": state.seconds, "wait_seconds": state.wait_seconds,
            "baseline_sum": state.baseline_sum, "baseline_count": state.baseline_count,
            "inputs": self.digests(),
        }
        if net.scaler is not None:
            payload["grad_scaler"] = net.scaler.state_dict()
        save_torch(payload, self.path)

    def _load(self, net: MeanTeacher, state: LoopState) -> None:
        path = self.path
        try:
            saved = load_weights_only(path)
        except AuxReidError:
            raise _damaged(path) from None
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise AuxReidError(f"{path} is not a train-round checkpoint; delete it or run without --resume")
        try:
            found = (saved["round"], saved["iterations"], saved["config_hash"])
        except KeyError:
            raise _damaged(path) from None
        if found != (self.round, self.iterations, self.config_hash):
            raise AuxReidError(
                f"{path} is from round {saved['round']} with {saved['iterations']} iterations and config "
                f"{saved['config_hash']}, but this run is round {self.round} with {self.iterations} iterations and "
                f"config {self.config_hash}; run without --resume to start the round over"
            )
        self._check_inputs(saved.get("inputs"))
        try:
            net.student.model.load_state_dict(saved["student"])
            net.teacher.model.load_state_dict(saved["teacher"])
            net.optimizer.load_state_dict(saved["optimizer"])
            if net.scaler is not None and "grad_scaler" in saved:
                net.scaler.load_state_dict(saved["grad_scaler"])
            state.iteration, state.step = int(saved["iteration"]), int(saved["step"])
            state.loss_sums = {k: float(v) for k, v in saved["loss_sums"].items()}
            state.precision_sum, state.precision_count = float(saved["precision_sum"]), int(saved["precision_count"])
            state.frames, state.seconds = int(saved["frames"]), float(saved["seconds"])
            state.wait_seconds = float(saved["wait_seconds"])
            state.baseline_sum, state.baseline_count = float(saved["baseline_sum"]), int(saved["baseline_count"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
            # the checks above passed, so what does not fit here is a file changed after it was written
            raise _damaged(path) from None

    def _check_inputs(self, recorded: object) -> None:
        """Refuse a checkpoint made from other clusters.h5 or another previous model.pt than this round's."""
        recorded = recorded if isinstance(recorded, dict) else {}
        what = {"clusters": "on other clusters", "model": "from another previous model"}
        for role, now in self.digests().items():
            then = recorded.get(role)
            if then == now:
                continue
            name = self.inputs[role].name
            had = f"its {name} had sha256 {then[:12]}" if isinstance(then, str) else f"it records no {name}"
            raise AuxReidError(f"{self.path} was made {what.get(role, f'from another {role}')} ({had}, "
                               f"{self.inputs[role]} has {now[:12]}); delete it or run without --resume")


class MetricsLog:
    """A round's records of RUN/metrics.jsonl (rank 0 only; nothing without a path).

    A round's lines first go to a pending file beside its model.pt (`pending_records_path_for`), and
    replace that round's lines of metrics.jsonl only in `commit`, once the new model.pt is in place: a
    rerun that fails or is killed then leaves the previous good round's records as they were, beside the
    model.pt they describe. The pending file lives as long as the checkpoint it extends, so a resumed
    round ends with one line per iteration and one round record.

    Args:
        path: RUN/metrics.jsonl, or None for no records.
        pending: the round's pending file.
        round: the round trained.
        enabled: only rank 0 writes.
    """

    def __init__(self, path: Path | None, *, pending: Path, round: int, enabled: bool) -> None:
        self.path = path if enabled else None
        self.pending, self.round = pending, round

    def start(self, *, from_iteration: int) -> None:
        """Forget what an earlier attempt at this round logged past `from_iteration` (0: all of it).

        A line that is not JSON (a write cut short by a kill) is dropped too.
        """
        if self.path is None or not self.pending.is_file():
            return
        if from_iteration == 0:
            self.discard()
            return
        lines = _read_lines(self.pending)
        kept = [line for line in lines
                if isinstance(record := _parse(line), dict) and record.get("iteration", 0) <= from_iteration]
        if len(kept) < len(lines):
            _rewrite(self.pending, kept)

    def write(self, record: dict) -> None:
        """Append one record to the pending file."""
        if self.path is None:
            return
        try:
            self.pending.parent.mkdir(parents=True, exist_ok=True)
            with open(self.pending, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=False) + "\n")
        except OSError as exc:
            raise write_error(self.pending, exc) from None

    def commit(self, round_record: dict) -> None:
        """metrics.jsonl with this round's earlier lines replaced by the pending ones and `round_record`.

        Called once the round's model.pt is in place. Other lines are kept in their order, but for lines
        that are not JSON (a write cut short by a kill). The file is rewritten atomically, then the pending
        file removed.
        """
        if self.path is None:
            return
        old = _read_lines(self.path) if self.path.is_file() else []
        kept = [line for line in old if (record := _parse(line, missing=_CUT)) is not _CUT
                and not (isinstance(record, dict) and record.get("round") == self.round
                         and record.get("kind") in ("iteration", "round"))]
        pending = _read_lines(self.pending) if self.pending.is_file() else []
        fresh = [line for line in pending if isinstance(_parse(line), dict)]
        _rewrite(self.path, [*kept, *fresh, json.dumps(round_record, sort_keys=False)])
        self.discard()

    def discard(self) -> None:
        """Drop the pending records (a round started over, or stopped with no checkpoint to resume)."""
        if self.path is not None:
            self.pending.unlink(missing_ok=True)


#: `_parse`'s answer for a line that is not JSON.
_CUT = object()


def _parse(line: str, missing: object = None) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return missing


def _read_lines(path: Path) -> list[str]:
    """The file's lines; bytes that are not UTF-8 survive a rewrite unchanged (surrogate escapes)."""
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise write_error(path, exc) from None


def _rewrite(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogateescape")
