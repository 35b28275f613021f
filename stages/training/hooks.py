"""What a round leaves besides its model: the resumable in-round checkpoint and the lines of RUN/metrics.jsonl.

They are hooks of the loop in the way of fast-reid's trainer: the loop calls them after each step, and the
checkpoint also restores a killed round, so a resumed round ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

from stages.artifacts.h5 import atomic_path, write_error
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


class RoundCheckpoint:
    """The round's state every `every` iterations, atomically, beside its model.pt; refused for another round.

    Args:
        path: the checkpoint file (`checkpoint_path_for` the round's model.pt).
        round, iterations, config_hash: what a checkpoint must have been made for to be resumed.
        every: save every this many iterations (0: never; the round's model.pt is the end).
        enabled: only rank 0 writes.
    """

    def __init__(self, path: Path, *, round: int, iterations: int, config_hash: str, every: int,
                 enabled: bool) -> None:
        self.path, self.round, self.iterations, self.config_hash = path, round, iterations, config_hash
        self.every, self.enabled = every, enabled

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
        }
        if net.scaler is not None:
            payload["grad_scaler"] = net.scaler.state_dict()
        save_torch(payload, self.path)

    def _load(self, net: MeanTeacher, state: LoopState) -> None:
        path = self.path
        saved = load_weights_only(path)
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise AuxReidError(f"{path} is not a train-round checkpoint; delete it and run without --resume")
        found = (saved["round"], saved["iterations"], saved["config_hash"])
        if found != (self.round, self.iterations, self.config_hash):
            raise AuxReidError(
                f"{path} is from round {saved['round']} with {saved['iterations']} iterations and config "
                f"{saved['config_hash']}, but this run is round {self.round} with {self.iterations} iterations and "
                f"config {self.config_hash}; run without --resume to start the round over"
            )
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


class MetricsLog:
    """Appends one JSON object a line to RUN/metrics.jsonl (rank 0 only; nothing without a path)."""

    def __init__(self, path: Path | None, *, enabled: bool) -> None:
        self.path = path if enabled else None

    def start_round(self, round: int, *, from_iteration: int) -> None:
        """Forget what an earlier attempt at this round logged past `from_iteration`, so lines never repeat.

        A rerun starts from 0; a resumed round from its checkpoint. Other rounds' lines are kept; a line
        that is not JSON (a write cut short by a kill) is dropped. The file is rewritten atomically.
        """
        if self.path is None or not self.path.is_file():
            return
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            stale = record is None or (isinstance(record, dict) and record.get("round") == round
                                       and (record.get("kind") == "round" or record.get("iteration", 0) > from_iteration))
            dropped += stale
            if not stale:
                kept.append(line)
        if dropped:
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=False) + "\n")
        except OSError as exc:
            raise write_error(self.path, exc) from None
