"""ReidModel structure, initial weights (none / imagenet / path) and the model.pt format."""

import pytest
import torch
import torchvision

from helpers_frames import tiny_config, tiny_dataset
from stages.artifacts.model_file import read_model_file, save_model
from stages.config import build_config
from stages.errors import AuxReidError
from stages.init_run import write_initial_model
from stages.model.checkpoint import load_model
from stages.model.network import ReidModel
from stages.model.pretrained import initial_model


def _config(**model):
    return build_config(({"seed": 1, "model": {"arch": "resnet18", "pretrained": "none", **model}}, "test"))


def _images(seed=0, n=2):
    return torch.randn(n, 3, 32, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_own_resnet_equals_torchvision_weights_rng_output_and_url(arch):
    from stages.model.resnet import IMAGENET_URLS, ResNet

    torch.manual_seed(3)
    reference, after_reference = getattr(torchvision.models, arch)(weights=None).eval(), torch.rand(4)
    torch.manual_seed(3)
    own, after_own = ResNet(arch).eval(), torch.rand(4)
    expected, state = reference.state_dict(), own.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[key], expected[key]) for key in expected)
    assert torch.equal(after_own, after_reference)  # the generator is left where torchvision leaves it
    images = _images()
    pooled = torch.flatten(own.avgpool(own.layer4(own.layer3(own.layer2(own.layer1(
        own.maxpool(own.relu(own.bn1(own.conv1(images))))))))), 1)
    assert torch.equal(own.fc(pooled), reference(images))
    weights = getattr(torchvision.models, f"ResNet{arch.removeprefix('resnet')}_Weights").IMAGENET1K_V1
    assert IMAGENET_URLS[arch] == weights.url


def test_reidmodel_stem_relu_changes_network_not_weights():
    plain = initial_model(_config(), num_classes=5)
    with_relu = initial_model(_config(stem_relu=True), num_classes=5)
    assert isinstance(plain.stem_relu, torch.nn.Identity) and isinstance(with_relu.stem_relu, torch.nn.ReLU)
    assert plain.state_dict().keys() == with_relu.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, with_relu.state_dict()[key])
    with torch.no_grad():
        f_plain = plain.eval().forward_features(_images())
        f_relu = with_relu.eval().forward_features(_images())
    assert (f_plain - f_relu).abs().max() > 1e-3


def test_reidmodel_last_stride_sets_layer4_downsampling():
    for arch, strided in (("resnet18", "conv1"), ("resnet50", "conv2")):
        for stride in (1, 2):
            model = ReidModel(arch=arch, num_classes=3, last_stride=stride)
            assert getattr(model.layer4[0], strided).stride == (stride, stride)
            assert model.layer4[0].downsample[0].stride == (stride, stride)
    model = ReidModel(arch="resnet18", num_classes=3, last_stride=1).eval()
    with torch.no_grad():
        x = model.layer3(model.layer2(model.layer1(model.maxpool(model.bn1(model.conv1(_images()))))))
        assert model.layer4(x).shape == (2, 512, 2, 1)


def test_reidmodel_head_neck_bias_frozen_zero_and_bias_free_classifier():
    model = ReidModel(arch="resnet18", num_classes=7)
    assert not model.neck.bias.requires_grad and torch.count_nonzero(model.neck.bias) == 0
    assert model.classifier.bias is None and model.classifier.weight.shape == (7, 512)
    assert model.num_classes == 7 and model.feature_dim == 512
    f, bn_f, logits = model.eval()(_images())
    assert f.shape == bn_f.shape == (2, 512) and logits.shape == (2, 7)
    assert torch.allclose(logits, bn_f @ model.classifier.weight.T, atol=1e-6)
    assert ReidModel(arch="resnet18", num_classes=0).forward_head(f)[1] is None


def test_reidmodel_unknown_arch_lists_choices():
    with pytest.raises(AuxReidError, match=r"^unknown model.arch 'resnet101'; choose one of resnet18, resnet34, resnet50$"):
        ReidModel(arch="resnet101", num_classes=1)


def test_initial_model_none_is_seeded():
    a, b = initial_model(_config(), num_classes=4), initial_model(_config(), num_classes=4)
    other = initial_model(build_config(({"seed": 2, "model": {"arch": "resnet18", "pretrained": "none"}}, "t")), num_classes=4)
    assert torch.equal(a.conv1.weight, b.conv1.weight) and torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.conv1.weight, other.conv1.weight)
    assert abs(a.classifier.weight.std().item() - 1e-3) < 3e-4


def test_initial_model_imagenet_without_local_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(AuxReidError) as error:
        initial_model(_config(pretrained="imagenet"), num_classes=4)
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
    model = initial_model(_config(pretrained="imagenet"), num_classes=4)
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert torch.count_nonzero(model.neck.bias) == 0


def test_initial_model_from_model_file_path(tmp_path):
    source = initial_model(build_config(({"seed": 9, "model": {"arch": "resnet18", "pretrained": "none"}}, "t")), num_classes=4)
    path = save_model(tmp_path / "m.pt", student=source, teacher=source, config=_config(), round=3, step=7)
    same_classes = initial_model(_config(pretrained=str(path)), num_classes=4)
    other_classes = initial_model(_config(pretrained=str(path)), num_classes=6)
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
        initial_model(_config(pretrained=str(tmp_path / "sd.pth")), num_classes=4)
    del state["extra.weight"]
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "sd.pth")
    with pytest.raises(AuxReidError, match=r"sd.pth has tensors of the wrong shape for a resnet18 ReidModel: "
                                           r"conv1.weight \(64, 3, 3, 3\) != \(64, 3, 7, 7\)$"):
        initial_model(_config(pretrained=str(tmp_path / "sd.pth")), num_classes=4)


def test_save_model_load_model_round_trip(tmp_path):
    config = _config(stem_relu=True, last_stride=1)
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


def test_read_model_file_refuses_pickled_objects_and_foreign_files(tmp_path):
    torch.save({"format": "auxreid-model", "when": __import__("datetime").date(2020, 1, 1)}, tmp_path / "p.pt")
    with pytest.raises(AuxReidError, match=r"p.pt cannot be loaded with weights_only=True \(it pickles the object datetime.date\)"):
        read_model_file(tmp_path / "p.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "f.pt")
    with pytest.raises(AuxReidError, match=r"f.pt is not an auxreid model file; convert a reference checkpoint"):
        read_model_file(tmp_path / "f.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(AuxReidError, match=r"junk.pt is not a readable torch file"):
        read_model_file(tmp_path / "junk.pt")
    with pytest.raises(AuxReidError, match=r"model file .*missing.pt does not exist"):
        read_model_file(tmp_path / "missing.pt")


def test_write_initial_model_sizes_classifier_to_train_tracklets(tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path / "data", (2, 2, 2))
    monkeypatch.setattr("stages.init_run.load_dataset", lambda data: dataset)
    path = write_initial_model(tiny_config(), tmp_path / "run" / "round_000" / "model.pt")
    model_file = read_model_file(path)
    assert model_file.num_classes == 3 and model_file.round == 0 and model_file.entries["step"] == 0
    for key, value in model_file.entries["teacher"].items():
        assert torch.equal(value, model_file.entries["student"][key])
