"""Tests for stages/model/pretrained.py: the initial weights (none / imagenet / a model.pt or state-dict path)."""

import pytest
import torch
import torchvision

from helpers_model import model_config
from stages.artifacts.model_file import save_model
from stages.config import build_config
from stages.errors import AuxReidError
from stages.model.pretrained import initial_model


def test_initial_model_none_is_seeded():
    a, b = initial_model(model_config(), num_classes=4), initial_model(model_config(), num_classes=4)
    other = initial_model(build_config(({"seed": 2, "model": {"arch": "resnet18", "pretrained": "none"}}, "t")), num_classes=4)
    assert torch.equal(a.conv1.weight, b.conv1.weight) and torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.conv1.weight, other.conv1.weight)
    assert abs(a.classifier.weight.std().item() - 1e-3) < 3e-4


def test_initial_model_imagenet_without_local_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(AuxReidError) as error:
        initial_model(model_config(pretrained="imagenet"), num_classes=4)
    assert str(error.value) == (
        f"model.pretrained=imagenet needs torchvision's resnet18 ImageNet weights, but resnet18-f37072fd.pth is not "
        f"in {folder} (no network access is attempted); download "
        "https://download.pytorch.org/models/resnet18-f37072fd.pth into that folder (or set TORCH_HOME), or use "
        "--set model.pretrained=none for random initialisation"
    )


def test_initial_model_imagenet_loads_the_cached_torchvision_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(5)
    reference = torchvision.models.resnet18(weights=None)
    old_style = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old_style, folder / "resnet18-f37072fd.pth")
    model = initial_model(model_config(pretrained="imagenet"), num_classes=4)
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert torch.count_nonzero(model.neck.bias) == 0


def test_initial_model_from_model_file_path(tmp_path):
    source = initial_model(build_config(({"seed": 9, "model": {"arch": "resnet18", "pretrained": "none"}}, "t")), num_classes=4)
    path = save_model(tmp_path / "m.pt", student=source, teacher=source, config=model_config(), round=3, step=7)
    same_classes = initial_model(model_config(pretrained=str(path)), num_classes=4)
    other_classes = initial_model(model_config(pretrained=str(path)), num_classes=6)
    assert torch.equal(same_classes.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    assert torch.equal(same_classes.classifier.weight, source.classifier.weight)
    assert torch.equal(other_classes.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    assert other_classes.classifier.weight.shape == (6, 512)


def test_initial_model_state_dict_with_unknown_keys_is_listed(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["conv1.weight"]
    torch.save(state, tmp_path / "sd.pth")
    with pytest.raises(AuxReidError, match=r"does not fit a resnet18 ReidModel: missing keys conv1.weight; unknown keys extra.weight"):
        initial_model(model_config(pretrained=str(tmp_path / "sd.pth")), num_classes=4)
    del state["extra.weight"]
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "sd.pth")
    with pytest.raises(AuxReidError, match=r"sd.pth has tensors of the wrong shape for a resnet18 ReidModel: "
                                           r"conv1.weight \(64, 3, 3, 3\) != \(64, 3, 7, 7\)$"):
        initial_model(model_config(pretrained=str(tmp_path / "sd.pth")), num_classes=4)
