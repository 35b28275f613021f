"""Tests for stages/model/checkpoint.py: load_model rebuilds the saved network from a model.pt (round trip)."""

import torch

from helpers_model import model_config
from stages.artifacts.model_file import read_model_file, save_model
from stages.config import build_config
from stages.model.checkpoint import load_model
from stages.model.pretrained import initial_model


def test_save_model_load_model_round_trip(tmp_path):
    config = model_config(stem_relu=True, last_stride=1)
    student = initial_model(config, num_classes=4)
    teacher = initial_model(build_config(({"seed": 4, "model": {"arch": "resnet18", "pretrained": "none"}}, "t")), num_classes=4)
    path = save_model(tmp_path / "r" / "model.pt", student=student, teacher=teacher, config=config, round=2, step=11,
                      extra={"optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}})
    entries = torch.load(path, weights_only=True)
    assert entries["format"] == "auxreid-model" and entries["version"] == 2 and entries["arch"] == "resnet18"
    assert (entries["round"], entries["step"], entries["num_classes"]) == (2, 11, 4)
    assert entries["optimizer"]["param_groups"][0]["lr"] == 0.1
    loaded = load_model(path)
    assert isinstance(loaded.stem_relu, torch.nn.ReLU) and loaded.layer4[0].conv1.stride == (1, 1)
    assert not loaded.training
    for key, value in teacher.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert torch.equal(load_model(path, which="student").conv1.weight, student.conv1.weight)
    assert read_model_file(path).config.model.stem_relu is True
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]
