"""`auxreid import-weights` through the CLI: a teacher/student checkpoint with --last-stride, a bare state dict, and
every file and option it refuses.

A teacher-only resnet18 checkpoint with epoch and best_mAP, and keys outside the reference layout, are in
tests/test_cli_extract.py (test_import_weights_converts_and_lists_bad_keys); garbage and truncated files, pickle
payloads and a state_dict that is a string in tests/bad_inputs/test_bad_weights.py; the conversion rules on
`convert_reference_checkpoint` in tests/test_import_weights.py.
"""

from __future__ import annotations

import pytest
import torch

from stages.artifacts.model_file import read_model_file
from stages.model.checkpoint import build_network
from stages.model.network import ReidModel
from stages.model.reference import KEY_MAP
from test_cli_train_round import invoke, refused, usage_error

_BACK = {ours: theirs for theirs, ours in KEY_MAP.items()}


def _reference_state(model: ReidModel, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """`model`'s weights under the reference's key names, as DataParallel saved them."""
    state = {}
    for key, value in model.state_dict().items():
        ours = next(p for p in _BACK if key.startswith(p))
        state[prefix + _BACK[ours] + key[len(ours):]] = value
    return state


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return ReidModel(arch="resnet18", num_classes=3), ReidModel(arch="resnet18", num_classes=3)


@pytest.fixture(scope="module")
def checkpoints(module_tmp, models):
    """The reference's layouts: teacher + student with scores, a bare teacher state dict, and two that are not."""
    teacher, student = models
    folder = module_tmp.mktemp("checkpoints")
    torch.save({"state_dict": _reference_state(teacher), "student_dict": _reference_state(student, prefix=""),
                "epoch": 7, "best_mAP": 0.25, "best_top1": 0.5}, folder / "full.pth.tar")
    torch.save(_reference_state(teacher, prefix=""), folder / "bare.pth")
    torch.save({"epoch": 3, "weights": {"x": torch.zeros(1)}}, folder / "no_state.pth")
    torch.save([1, 2], folder / "list.pth")
    return folder


def test_teacher_student_checkpoint_with_last_stride_1(tmp_path, checkpoints, models):
    out = tmp_path / "model.pt"
    result = invoke("import-weights", checkpoints / "full.pth.tar", "--out", out, "--arch", "resnet18",
                    "--last-stride", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"wrote {out}: resnet18, 3 classifier outputs, epoch 7.0, best_mAP 0.25, best_top1 0.5"]
    model = read_model_file(out)
    assert (model.round, model.num_classes, model.config.model.arch, model.config.model.last_stride) == (
        7, 3, "resnet18", 1)
    assert model.entries["imported_from"] == {"file": "full.pth.tar", "epoch": 7.0, "best_mAP": 0.25, "best_top1": 0.5}
    for which, original in zip(("teacher", "student"), models):
        network = build_network(model, which)
        assert network.layer4[0].conv1.stride == (1, 1)  # --last-stride reached the network
        for key, value in original.state_dict().items():
            assert torch.equal(network.state_dict()[key], value), (which, key)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_bare_state_dict_is_the_teacher_without_scores(tmp_path, checkpoints, models):
    out = tmp_path / "model.pt"
    result = invoke("import-weights", checkpoints / "bare.pth", "--out", out, "--arch", "resnet18")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote {out}: resnet18, 3 classifier outputs"]
    model = read_model_file(out)
    assert model.round == 0 and model.config.model.last_stride == 2
    assert model.entries["imported_from"] == {"file": "bare.pth"}
    assert torch.equal(build_network(model, "student").conv1.weight, models[0].conv1.weight)


@pytest.mark.parametrize(("checkpoint", "args", "message"), [
    ("{dir}/absent.pth", ["--arch", "resnet18"], "model file {dir}/absent.pth does not exist; check the path"),
    ("{dir}", ["--arch", "resnet18"], "model file {dir} is a folder; give the weight file inside it"),
    ("{dir}/full.pth.tar", [], "{dir}/full.pth.tar state_dict does not fit a resnet50 ReidModel: missing keys "),
    ("{dir}/full.pth.tar", ["--arch", "resnet18", "--last-stride", "3"],
     "--last-stride 3 is out of range; it must be 1 or 2 (the layer4 stride the checkpoint was trained with)"),
    ("{dir}/absent.pth", ["--arch", "resnet18", "--last-stride", "0"],
     "--last-stride 0 is out of range; it must be 1 or 2 (the layer4 stride the checkpoint was trained with)"),
    ("{dir}/no_state.pth", ["--arch", "resnet18"],
     "{dir}/no_state.pth has no 'state_dict' entry (it has: epoch, weights); expected the reference's checkpoint dict"),
    ("{dir}/list.pth", ["--arch", "resnet18"], "{dir}/list.pth holds a list, expected the reference's dict of weights"),
], ids=["missing", "folder", "default-arch-resnet50", "last-stride-3", "last-stride-0-before-the-file",
        "no-state-dict", "not-a-dict"])
def test_refused_checkpoints_and_options_keep_the_previous_output(tmp_path, checkpoints, checkpoint, args, message):
    out = tmp_path / "model.pt"
    out.write_bytes(b"previous model")
    result = invoke("import-weights", checkpoint.format(dir=checkpoints), "--out", out, *args)
    refused(result, f"error: {message.format(dir=checkpoints)}")
    assert out.read_bytes() == b"previous model" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_out_that_is_a_folder_is_refused(tmp_path, checkpoints):
    refused(invoke("import-weights", checkpoints / "bare.pth", "--out", tmp_path, "--arch", "resnet18"),
            f"error: cannot write {tmp_path}: it is a directory")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "text"), [
    (["--out", "{tmp}/m.pt", "--arch", "vgg16"], "Invalid value for '--arch'"),
    (["--out", "{tmp}/m.pt", "--last-stride", "one"], "Invalid value for '--last-stride'"),
    (["--arch", "resnet18"], "Missing option '--out'"),
], ids=["unknown-arch", "stride-not-a-number", "no-out"])
def test_option_values_of_the_wrong_kind_are_usage_errors(tmp_path, checkpoints, args, text):
    usage_error(invoke("import-weights", checkpoints / "bare.pth", *[a.format(tmp=tmp_path) for a in args]), text)
    assert list(tmp_path.iterdir()) == []
