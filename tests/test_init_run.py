"""Tests for stages/init_run.py: write_initial_model, the round-0 model.pt."""

import torch

from helpers_frames import tiny_config, tiny_dataset
from stages.artifacts.model_file import read_model_file
from stages.init_run import write_initial_model


def test_write_initial_model_sizes_classifier_to_train_tracklets(tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path / "data", (2, 2, 2))
    monkeypatch.setattr("stages.init_run.load_dataset", lambda data: dataset)
    path = write_initial_model(tiny_config(), tmp_path / "run" / "round_000" / "model.pt")
    model_file = read_model_file(path)
    assert model_file.num_classes == 3 and model_file.round == 0 and model_file.entries["step"] == 0
    for key, value in model_file.entries["teacher"].items():
        assert torch.equal(value, model_file.entries["student"][key])
