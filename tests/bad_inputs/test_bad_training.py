"""train-round on hostile inputs: what a failed rerun leaves of RUN/metrics.jsonl, inputs checked against the files
they are used with, and training that went wrong.

Classes: A a rerun of a round that fails or is killed keeps the previous round's records until its own model.pt
is in place, and a resumed round ends with one set of records; B clusters.h5 rows against the dataset, an
in-round checkpoint against the clusters and model it was made from, a model.pt against the config's network;
C an exploding loss stops the round, a damaged checkpoint says what to do. Every case runs the CLI on a copy of
the tiny run of `built_run` (through round 1, whose model.pt and metrics record are the "previous good round").
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from stages.artifacts.h5 import file_sha256
from stages.training import loop
from stages.training.loop import ExplodingLoss, LoopState, watch_total
from stages.training.step import NonFiniteLoss
from test_cli_train_round import built_run, configure, invoke, refused, run_copy, snapshot

#: A round of 4 iterations that checkpoints after the second.
#: The run's own settings (config.yaml) for a round of 4 iterations with a checkpoint every 2.
FOUR_WITH_CHECKPOINT = ("train.fixed_iters=4", "train.checkpoint_every=2")
ADVICE = "was not written (earlier files are intact); lower train.lr or check the clusters and the model"
#: The loop's own step, put back between two commands of a test.
REAL_STEP = loop.train_step


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


@pytest.fixture
def run(base, tmp_path):
    return run_copy(base, tmp_path)


def _own(path: Path) -> Path:
    """Break the hard link `run_copy` made, so the file can change without touching the shared run."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    return path


def _patch_step(monkeypatch, *, kill_at: int | None = None, nan_at: int | None = None, totals=None) -> None:
    """The loop's train_step, stopped or with its total replaced, by the global step (= the 0-based iteration of
    round 1 here: round 0's model has step 0)."""
    real = REAL_STEP

    def step(*args, **kwargs):
        if kwargs["step"] == kill_at:
            raise KeyboardInterrupt
        if kwargs["step"] == nan_at:
            raise NonFiniteLoss("id", float("nan"))
        values = real(*args, **kwargs)
        if totals is not None:
            values["total"] = float(totals(kwargs["step"]))
        return values

    monkeypatch.setattr(loop, "train_step", step)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _killed_with_a_checkpoint(run: Path, monkeypatch) -> Path:
    """Round 1 retrained for 4 iterations and killed in the 4th: a checkpoint of iteration 2 stays."""
    configure(run, *FOUR_WITH_CHECKPOINT)
    _patch_step(monkeypatch, kill_at=3)
    assert invoke("train-round", run, "--round", "1").exit_code == 130
    monkeypatch.setattr(loop, "train_step", REAL_STEP)
    checkpoint = run / "round_001" / "model.checkpoint.pt"
    assert checkpoint.is_file()
    return checkpoint


# --- A: a round's records are replaced only when its new model.pt is in place ----------------------------------


@pytest.mark.parametrize("how", ["killed", "nan"])
def test_a_rerun_stopped_at_its_first_iteration_keeps_the_previous_rounds_records(run, monkeypatch, how):
    before = snapshot(run)
    _patch_step(monkeypatch, **{"kill_at" if how == "killed" else "nan_at": 0})
    result = invoke("train-round", run, "--round", "1")
    if how == "killed":
        assert result.exit_code == 130, result.output
    else:
        model = run / "round_001" / "model.pt"
        refused(result, f"error: round 1 iteration 1: loss term 'id' is nan; training stopped and {model} {ADVICE}",
                alone=False)
    assert snapshot(run) == before  # metrics.jsonl keeps round 1's record, model.pt is the old one, nothing left


def test_a_killed_rerun_keeps_the_records_until_the_resumed_round_replaces_them(run, monkeypatch):
    metrics = run / "metrics.jsonl"
    old = metrics.read_bytes()
    assert [(r["kind"], r["round"]) for r in _records(metrics)] == [("iteration", 1), ("round", 1)]
    _killed_with_a_checkpoint(run, monkeypatch)
    assert metrics.read_bytes() == old
    pending = run / "round_001" / "model.checkpoint.jsonl"
    assert [r["iteration"] for r in _records(pending)] == [1, 2, 3]
    result = invoke("train-round", run, "--round", "1", "--resume")
    assert result.exit_code == 0, result.output
    records = _records(metrics)
    assert [(r["kind"], r["round"], r.get("iteration")) for r in records] == [
        ("iteration", 1, 1), ("iteration", 1, 2), ("iteration", 1, 3), ("iteration", 1, 4), ("round", 1, None)]
    assert records[-1]["iterations"] == 4
    assert not pending.exists() and not (run / "round_001" / "model.checkpoint.pt").exists()


def test_metrics_file_where_the_round_keeps_its_pending_records_is_refused(base, tmp_path):
    before = snapshot(base)
    out, metrics = tmp_path / "m.pt", tmp_path / "m.checkpoint.jsonl"
    result = invoke("train-round", "--clusters", base / "round_001" / "clusters.h5", "--model",
                    base / "round_000" / "model.pt", "--out", out, "--metrics", metrics)
    assert refused(result) == (f"error: --metrics {metrics} is where train-round keeps the round's records until {out} "
                               "is in place; give another metrics file")
    assert list(tmp_path.iterdir()) == [] and snapshot(base) == before


# --- B: files checked against the files they are used with ------------------------------------------------------


def _rows(clusters: Path) -> int:
    with h5py.File(clusters, "r") as handle:
        return int(handle["labels"].shape[0])


def _replace(clusters: Path, **arrays: np.ndarray) -> None:
    with h5py.File(_own(clusters), "r+") as handle:
        for name, value in arrays.items():
            del handle[name]
            handle[name] = value


@pytest.mark.parametrize("damage", ["half", "one tracklet", "past the end", "negative", "short index"])
def test_clusters_rows_that_are_not_each_train_tracklet_once_are_refused(run, damage):
    clusters = run / "round_001" / "clusters.h5"
    n = _rows(clusters)
    with h5py.File(clusters, "r") as handle:
        labels, camera = handle["labels"][()], handle["camera"][()]
    index = np.arange(n)
    half = n // 2
    change, problem = {
        "half": ({"labels": labels[:half], "tracklet_index": index[:half], "camera": camera[:half]},
                 f"{half} rows naming {half} distinct tracklets"),
        "one tracklet": ({"tracklet_index": np.zeros(n, dtype=np.int64)}, f"{n} rows naming 1 distinct tracklet"),
        "past the end": ({"tracklet_index": np.where(index == n - 1, n, index)},
                         f"tracklet_index holds {n}, outside 0..{n - 1}"),
        "negative": ({"tracklet_index": np.where(index == 0, -1, index)}, f"tracklet_index holds -1, outside 0..{n - 1}"),
        "short index": ({"tracklet_index": index[:-1]}, f"labels has {n} rows but tracklet_index {n - 1}"),
    }[damage]
    _replace(clusters, **change)
    before = snapshot(run)
    message = (f"error: {clusters} does not label each of the {n} train tracklets of dataset 'synth' exactly once "
               f"({problem}); re-run `auxreid extract` and `auxreid cluster` for this round")
    assert refused(invoke("train-round", run, "--round", "1"), alone=False) == message
    assert snapshot(run) == before


def test_resume_refuses_a_checkpoint_made_on_other_clusters(run, monkeypatch):
    checkpoint = _killed_with_a_checkpoint(run, monkeypatch)
    clusters = run / "round_001" / "clusters.h5"
    then = file_sha256(clusters)
    with h5py.File(_own(clusters), "r+") as handle:
        handle["centroids"][0, 0] += 1.0
    now = file_sha256(clusters)
    before = snapshot(run)
    result = invoke("train-round", run, "--round", "1", "--resume")
    assert refused(result, alone=False) == (
        f"error: {checkpoint} was made on other clusters (its clusters.h5 had sha256 {then[:12]}, {clusters} has "
        f"{now[:12]}); delete it or run without --resume")
    assert snapshot(run) == before


def test_resume_refuses_a_checkpoint_made_from_another_previous_model(run, monkeypatch):
    checkpoint = _killed_with_a_checkpoint(run, monkeypatch)
    model = run / "round_000" / "model.pt"
    then = file_sha256(model)
    entries = torch.load(model, weights_only=True)
    entries["student"]["conv1.weight"] += 0.01
    model.unlink()
    torch.save(entries, model)
    now = file_sha256(model)
    before = snapshot(run)
    result = invoke("train-round", run, "--round", "1", "--resume")
    assert refused(result, alone=False) == (
        f"error: {checkpoint} was made from another previous model (its model.pt had sha256 {then[:12]}, {model} "
        f"has {now[:12]}); delete it or run without --resume")
    assert snapshot(run) == before


@pytest.mark.parametrize(("settings", "says"), [
    (("model.arch=resnet34",), "is a resnet18 but the config says model.arch=resnet34"),
    (("model.last_stride=2",), "is a resnet18 with model.last_stride=1 but the config says model.last_stride=2"),
    (("model.arch=resnet50", "model.stem_relu=true"),
     "is a resnet18 with model.stem_relu=false but the config says model.arch=resnet50, model.stem_relu=true"),
], ids=["arch", "last_stride", "arch-and-stem_relu"])
def test_a_config_whose_network_differs_from_the_model_is_refused(run, tmp_path, settings, says):
    model = run / "round_000" / "model.pt"
    message = (f"error: {model} {says}; a model's network is fixed when it is made: drop these model.* settings "
               "(from --set, --config or the run's config.yaml), or start a new run with them (`auxreid init`)")
    configure(run, *settings)
    before = snapshot(run)
    overrides = [a for setting in settings for a in ("--set", setting)]
    assert refused(invoke("train-round", run, "--round", "1"), alone=False) == message  # after round 0's stale warning
    explicit = ["train-round", "--clusters", run / "round_001" / "clusters.h5", "--model", model, "--out",
                tmp_path / "m.pt"]
    assert refused(invoke(*explicit, *overrides), alone=False) == message
    assert snapshot(run) == before and not (tmp_path / "m.pt").exists()


# --- C: degenerate training --------------------------------------------------------------------------------------


def test_watch_total_stops_only_over_100x_the_first_five_iterations_mean():
    state = LoopState(iteration=0, step=0)
    for iteration, total in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        watch_total(state, iteration, total * 1000)  # the first iterations only build the mean, however large
    assert (state.baseline_sum, state.baseline_count) == (15000.0, 5)
    watch_total(state, 5, 300000.0)  # exactly 100x the mean 3000: not over
    with pytest.raises(ExplodingLoss) as stopped:
        watch_total(state, 6, 300001.0)
    assert (stopped.value.total, stopped.value.mean, stopped.value.count) == (300001.0, 3000.0, 5)
    assert stopped.value.message(round=2, iteration=7, out="m.pt") == (
        f"train-round stopped at iteration 7 of round 2: total loss 3e+05 is over 100x its first 5 iterations' mean "
        f"3000; m.pt {ADVICE}")
    zero = LoopState(iteration=0, step=0)
    for iteration in range(8):
        watch_total(zero, iteration, 0.0)  # all-zero loss weights give a zero loss throughout: nothing is over 0


def _exploding(step: int) -> float:
    """Totals 1, 2, 3, 4, 5 over the first five iterations (mean 3), then 301 (over 300)."""
    return step + 1 if step < 5 else 301


def test_an_exploding_loss_stops_the_round_and_keeps_the_previous_files(run, monkeypatch):
    configure(run, "train.fixed_iters=8")
    before = snapshot(run)
    _patch_step(monkeypatch, totals=_exploding)
    result = invoke("train-round", run, "--round", "1")
    model = run / "round_001" / "model.pt"
    assert refused(result, alone=False) == (
        f"error: train-round stopped at iteration 6 of round 1: total loss 301 is over 100x its first 5 iterations' "
        f"mean 3; {model} {ADVICE}")
    assert snapshot(run) == before


def test_a_resumed_round_keeps_the_mean_of_its_first_iterations(run, monkeypatch):
    """Killed after the checkpoint of iteration 2, the resumed round still measures against iterations 1-5."""
    checkpoint = run / "round_001" / "model.checkpoint.pt"
    configure(run, "train.fixed_iters=8", "train.checkpoint_every=2")
    _patch_step(monkeypatch, kill_at=3, totals=_exploding)
    assert invoke("train-round", run, "--round", "1").exit_code == 130
    assert checkpoint.is_file()
    _patch_step(monkeypatch, totals=_exploding)
    result = invoke("train-round", run, "--round", "1", "--resume")
    assert refused(result, alone=False) == (
        f"error: train-round stopped at iteration 6 of round 1: total loss 301 is over 100x its first 5 iterations' "
        f"mean 3; {run / 'round_001' / 'model.pt'} {ADVICE}")


@pytest.mark.parametrize("damage", ["garbage", "cut short", "no student"])
def test_a_damaged_checkpoint_says_delete_it_or_run_without_resume(run, monkeypatch, damage):
    checkpoint = _killed_with_a_checkpoint(run, monkeypatch)
    if damage == "garbage":
        checkpoint.write_bytes(b"not a checkpoint at all")
    elif damage == "cut short":
        data = checkpoint.read_bytes()
        checkpoint.write_bytes(data[: len(data) // 2])
    else:
        saved = torch.load(checkpoint, weights_only=True)
        del saved["student"]
        torch.save(saved, checkpoint)
    before = snapshot(run)
    result = invoke("train-round", run, "--round", "1", "--resume")
    assert refused(result, alone=False) == (f"error: {checkpoint} cannot be read as a train-round checkpoint "
                                            "(damaged or cut short); delete it or run without --resume")
    assert snapshot(run) == before
