"""Tests for stages/train_round.py and `auxreid train-round`: outputs, resume, NaN stop, refusals, 2 gloo ranks."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from typer.testing import CliRunner

from auxreid_cli.main import app
from helpers_frames import tiny_dataset
from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.model_file import read_model_file, save_model
from stages.artifacts.readers import read_clusters
from stages.artifacts.schemas import CLUSTERS
from stages.config import build_config
from stages.errors import AuxReidError
from stages.model.checkpoint import build_network
from stages.model.pretrained import initial_model
from stages.progress import NullProgress
from stages.rundir import RunDir, write_run_config
from stages.train_round import _rlsce_k, train_to_file
from stages.training.hooks import checkpoint_path_for
from stages.training.optim import round_iterations

runner = CliRunner()
#: 16 train tracklets: 4 clusters of 3 (cameras mixed) and 4 noise.
FRAME_COUNTS = (3, 2, 4, 3, 1, 2, 3, 4, 2, 3, 3, 2, 4, 1, 2, 3)
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, -1, -1, -1, -1])
ITERATIONS = 6


def _config(**train):
    return build_config((
        {
            "seed": 5,
            "data": {"dataset": "synth", "height": 32, "width": 16, "num_workers": 0},
            "model": {"arch": "resnet18", "pretrained": "none"},
            "cluster": {"rlsce_k": 2},
            "train": {"batch_size": 8, "instances": 2, "train_seq_len": 2, "bn_chunk": 4, "iters_multiplier": 0,
                      "fixed_iters": ITERATIONS, "checkpoint_every": 0, "device": "cpu", "amp": "off",
                      "channels_last": False, **train},
        },
        "test",
    ))


@pytest.fixture(scope="module")
def dataset(module_tmp):
    return tiny_dataset(module_tmp.mktemp("train_data"), FRAME_COUNTS)


def _inputs(folder: Path, dataset, config, *, round: int = 1, labels: np.ndarray = LABELS, nan: bool = False):
    """clusters.h5 of `round` and the previous round's model.pt, in `folder`."""
    count = int(labels.max()) + 1
    rng = np.random.default_rng(0)
    data = {
        "labels": labels,
        "centroids": rng.normal(size=(count, 512)).astype(np.float32),
        "nearest_clusters": np.stack([(np.arange(count) + s) % count for s in (1, 2)], 1)[:, : max(count - 1, 0)],
        "tracklet_index": np.arange(len(labels)),
    }
    provenance = make_provenance(CLUSTERS, dataset=dataset.name, fingerprint=dataset.fingerprint, round=round,
                                 config=config)
    clusters = write_artifact(folder / f"round_{round:03d}" / "clusters.h5", provenance, data,
                              attrs={"num_clusters": count, "eps": 0.5})
    model = initial_model(config, num_classes=len(labels))
    if nan:  # finite weights (NaN ones are refused on reading) whose activations overflow: the loss turns NaN
        with torch.no_grad():
            model.conv1.weight.fill_(3e38)
    previous = save_model(folder / f"round_{round - 1:03d}" / "model.pt", student=model, teacher=model,
                          config=config, round=round - 1, step=10, dataset=dataset.name,
                          fingerprint=dataset.fingerprint)
    return clusters, previous


def _train(folder: Path, dataset, config, **kwargs):
    clusters, previous = _inputs(folder, dataset, config)
    out = folder / "round_001" / "model.pt"
    train_to_file(config, clusters_path=clusters, model_path=previous, out_path=out, round=1,
                    metrics_path=folder / "metrics.jsonl", dataset=dataset, **kwargs)
    return out


def test_round_iterations_dynamic_or_fixed():
    config = build_config(({"train": {"iters_multiplier": 0.6}}, "t"))
    assert round_iterations(config.train, num_clusters=625) == 375
    assert round_iterations(config.train, num_clusters=1) == 1
    assert round_iterations(_config().train, num_clusters=625) == ITERATIONS


def test_train_round_writes_model_with_provenance_and_metrics(tmp_path, dataset):
    config = _config()
    out = _train(tmp_path, dataset, config)
    model_file = read_model_file(out)
    entries = model_file.entries
    assert (model_file.round, model_file.step, model_file.fingerprint) == (1, 10 + ITERATIONS, dataset.fingerprint)
    assert (entries["iterations"], entries["num_clusters"], entries["labelled_tracklets"]) == (ITERATIONS, 4, 12)
    assert set(model_file.parents) == {"clusters", "model"}
    assert "state" in entries["optimizer"] and entries["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3.5e-4)
    student, teacher = build_network(model_file, "student"), build_network(model_file, "teacher")
    assert not torch.equal(student.conv1.weight, teacher.conv1.weight)
    assert not checkpoint_path_for(out).exists()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["iteration"] * ITERATIONS + ["round"]
    assert [line["iteration"] for line in lines[:-1]] == list(range(1, ITERATIONS + 1))
    assert set(lines[0]["losses"]) == {"id", "triplet", "soft_id", "soft_triplet", "total"}
    last = lines[-1]
    assert (last["round"], last["clusters"], last["iterations"]) == (1, 4, ITERATIONS)
    assert last["frames_per_s"] > 0 and last["seconds"] > 0 and 0.0 < last["loader_wait_share"] < 1.0
    assert 0.0 <= last["pseudo_label_precision"] <= 1.0


class _Kill(NullProgress):
    """Interrupts training after `after` iterations, like a kill between two steps."""

    def __init__(self, after: int) -> None:
        self.after, self.count = after, 0

    def advance(self, task: str, amount: int = 1) -> None:
        self.count += amount
        if task == "train" and self.count >= self.after:
            raise KeyboardInterrupt


def test_resume_after_a_kill_gives_the_weights_of_an_uninterrupted_run(tmp_path, dataset):
    config = _config(checkpoint_every=4)
    whole = read_model_file(_train(tmp_path / "whole", dataset, config))
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", dataset, config, progress=_Kill(after=5))
    out = tmp_path / "cut" / "round_001" / "model.pt"
    assert not out.exists() and checkpoint_path_for(out).is_file()
    train_to_file(config, clusters_path=tmp_path / "cut" / "round_001" / "clusters.h5",
                    model_path=tmp_path / "cut" / "round_000" / "model.pt", out_path=out, round=1,
                    metrics_path=tmp_path / "cut" / "metrics.jsonl", dataset=dataset, resume=True)
    resumed = read_model_file(out)
    assert resumed.step == whole.step
    for which in ("student", "teacher"):
        for key, value in whole.entries[which].items():
            assert torch.equal(resumed.entries[which][key], value), f"{which} {key}"
    assert not checkpoint_path_for(out).exists()
    lines = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [line.get("iteration") for line in lines] == [1, 2, 3, 4, 5, 6, None]  # 5 was logged, then redone


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path, dataset):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, dataset, _config(checkpoint_every=2), progress=_Kill(after=3))
    with pytest.raises(AuxReidError, match=r"model.checkpoint.pt is from round 1 with 6 iterations and config .*"
                                           r"run without --resume to start the round over"):
        train_to_file(_config(checkpoint_every=2, lr=1e-3), clusters_path=tmp_path / "round_001" / "clusters.h5",
                        model_path=tmp_path / "round_000" / "model.pt", out_path=tmp_path / "round_001" / "model.pt",
                        round=1, dataset=dataset, resume=True)


def test_nan_loss_stops_the_round_and_leaves_the_previous_model(tmp_path, dataset):
    config = _config()
    clusters, previous = _inputs(tmp_path, dataset, config, nan=True)
    out = tmp_path / "round_001" / "model.pt"
    out.write_bytes(b"previous model")
    with pytest.raises(AuxReidError, match=r"^round 1 iteration 1: loss term '(id|triplet|soft_id|soft_triplet|total)' "
                                           r"is nan; training stopped and .*model.pt was not written"):
        train_to_file(config, clusters_path=clusters, model_path=previous, out_path=out, round=1, dataset=dataset)
    assert out.read_bytes() == b"previous model"


def test_train_round_refuses_other_round_dataset_and_zero_clusters(tmp_path, dataset):
    config = _config()
    clusters, previous = _inputs(tmp_path, dataset, config)
    out = tmp_path / "out.pt"
    with pytest.raises(AuxReidError, match=r"clusters.h5 is from round 1, but round 2 is needed here"):
        train_to_file(config, clusters_path=clusters, model_path=previous, out_path=out, round=2, dataset=dataset)
    other = tiny_dataset(tmp_path / "other", FRAME_COUNTS[:-1] + (5,))
    with pytest.raises(AuxReidError, match=r"belongs to another dataset or split"):
        train_to_file(config, clusters_path=clusters, model_path=previous, out_path=out, round=1, dataset=other)
    empty, _ = _inputs(tmp_path / "empty", dataset, config, labels=np.full(16, -1))
    with pytest.raises(AuxReidError, match=r"no clusters"):
        train_to_file(config, clusters_path=empty, model_path=previous, out_path=out, round=1, dataset=dataset)
    assert not out.exists()


def _first_losses(folder: Path, dataset, **train):
    """One iteration of round 1: its losses (from metrics.jsonl) and the model it wrote."""
    _train(folder, dataset, _config(fixed_iters=1, **train))
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return lines[0]["losses"], read_model_file(folder / "round_001" / "model.pt")


@pytest.fixture(scope="module")
def fp32_losses(module_tmp, dataset):
    return _first_losses(module_tmp.mktemp("fp32"), dataset)[0]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_train_on_the_cpu_like_fp32(tmp_path, dataset, fp32_losses, amp):
    """The CUDA branches (autocast, fp16's GradScaler, NHWC) run on the CPU: the first iteration's total loss (same
    weights, same batch) within 1e-2 of fp32's, each term within 2e-2 of itself or 2% of the total, and finite
    weights after the step.

    Terms are not held to 1e-2 of themselves: the triplet terms are differences of nearby distances, which bf16's
    8-bit mantissa moves by up to 5% of their value here (the total by 0.3%).
    """
    mixed, model_file = _first_losses(tmp_path, dataset, amp=amp, channels_last=True)
    total = fp32_losses["total"]
    assert mixed["total"] == pytest.approx(total, rel=1e-2)
    for term, value in fp32_losses.items():
        assert mixed[term] == pytest.approx(value, rel=2e-2, abs=0.02 * total), term
    assert mixed != fp32_losses  # autocast did run
    assert all(torch.isfinite(p).all() for p in build_network(model_file, "student").parameters())


def test_rlsce_divides_by_the_k_clusters_h5_was_made_with(tmp_path, dataset):
    """The map of 4 clusters holds 2 neighbours; with cluster.rlsce_k = 2 each gets eps / 2, with 60 eps / 60."""
    config = _config()
    clusters, _ = _inputs(tmp_path, dataset, config)
    artifact = read_clusters(clusters)
    assert _rlsce_k(artifact, config) == 2
    assert _rlsce_k(dataclasses.replace(artifact, attrs={**artifact.attrs, "rlsce_k": 60}), config) == 60
    narrow = dataclasses.replace(artifact, attrs={**artifact.attrs, "rlsce_k": 1})
    with pytest.raises(AuxReidError, match=r"its RLSCE map has 2 neighbours per cluster, more than cluster.rlsce_k = 1; "
                                           r"re-run `auxreid cluster` with this config$"):
        _rlsce_k(narrow, config)


def test_cli_train_round_run_mode_and_missing_inputs(tmp_path, dataset, monkeypatch):
    for where in ("stages.rundir", "stages.train_round"):  # the run's fingerprint check, then the stage
        monkeypatch.setattr(f"{where}.load_dataset", lambda data: dataset)
    config = _config()
    run = RunDir.resolve("exp")
    write_run_config(run, config)
    missing = runner.invoke(app, ["train-round", "exp", "--round", "1"])
    assert missing.exit_code == 1
    assert "clusters.h5 does not exist; run `auxreid cluster exp --round 1` first" in missing.output
    _inputs(run.path, dataset, config)
    result = runner.invoke(app, ["train-round", "exp", "--round", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and read_model_file(run.model(1)).round == 1
    assert (run.path / "metrics.jsonl").is_file()
    bad = runner.invoke(app, ["train-round", "--clusters", str(run.clusters(1))])
    assert bad.exit_code == 1 and "--model, --out missing" in bad.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, folder: str, dataset) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    config = _config(fixed_iters=2)
    root = Path(folder)
    train_to_file(config, clusters_path=root / "round_001" / "clusters.h5", model_path=root / "round_000" / "model.pt",
                    out_path=root / "round_001" / "model.pt", round=1, metrics_path=root / "metrics.jsonl",
                    dataset=dataset)
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_write_once_and_match_one_process(tmp_path, dataset):
    single = tmp_path / "single"
    torch.set_num_threads(1)
    _train(single, dataset, _config(fixed_iters=2))
    double = tmp_path / "double"
    _inputs(double, dataset, _config(fixed_iters=2))
    mp.spawn(_rank, args=(2, _free_port(), str(double), dataset), nprocs=2, join=True)
    assert sorted(p.name for p in (double / "round_001").iterdir()) == ["clusters.h5", "model.pt"]
    lines = (double / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["world_size"] == 2
    one, two = read_model_file(single / "round_001" / "model.pt"), read_model_file(double / "round_001" / "model.pt")
    for which in ("student", "teacher"):
        for key, value in one.entries[which].items():
            torch.testing.assert_close(two.entries[which][key], value, atol=1e-5, rtol=1e-4, msg=f"{which} {key}")


def test_fewer_clusters_than_batch_identities_shrinks_the_batch_with_a_warning(tmp_path, dataset):
    from stages.progress import RecordingProgress

    progress = RecordingProgress()
    out = _train(tmp_path, dataset, _config(batch_size=12, fixed_iters=1), progress=progress)
    assert read_model_file(out).step == 11
    assert progress.warnings == ["round 1 has 4 clusters, fewer than the 6 identities of a batch "
                                 "(train.batch_size 12 / train.instances 2); batches hold 4 x 2"]
    single = np.where(LABELS >= 0, 0, -1)
    clusters, previous = _inputs(tmp_path / "one", dataset, _config(), labels=single)
    with pytest.raises(AuxReidError, match=r"^round 1 has 1 cluster\(s\); a batch needs at least 2 pseudo identities"):
        train_to_file(_config(), clusters_path=clusters, model_path=previous, out_path=tmp_path / "one" / "m.pt",
                        round=1, dataset=dataset)
