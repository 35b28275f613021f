"""import-weights: the reference's checkpoint layout (base.N, feat_bn, classifier) into model.pt."""

import numpy as np
import pytest
import torch

from stages.errors import AuxReidError
from stages.import_weights import run_import_weights
from stages.model.reference import KEY_MAP, convert_reference_checkpoint, rename_reference_keys
from stages.model.checkpoint import load_model, read_model_file
from stages.model.network import ReidModel

_BACK = {ours: theirs for theirs, ours in KEY_MAP.items()}


def _reference_state(model, *, prefix="module."):
    """`model`'s weights under the reference's key names (as DataParallel saved them)."""
    state = {}
    for key, value in model.state_dict().items():
        ours = next(p for p in _BACK if key.startswith(p))
        state[prefix + _BACK[ours] + key[len(ours):]] = value.clone()
    return state


def _models(num_classes=6):
    torch.manual_seed(0)
    teacher = ReidModel(arch="resnet18", num_classes=num_classes)
    student = ReidModel(arch="resnet18", num_classes=num_classes)
    return teacher, student


def test_run_import_weights_round_trips_teacher_and_student(tmp_path):
    teacher, student = _models()
    checkpoint = {"state_dict": _reference_state(teacher), "student_dict": _reference_state(student, prefix=""),
                  "epoch": 37, "best_mAP": np.float64(0.899)}
    torch.save(checkpoint, tmp_path / "ref.pth.tar")
    out = run_import_weights(tmp_path / "ref.pth.tar", out_path=tmp_path / "model.pt", arch="resnet18")
    model_file = read_model_file(out)
    assert model_file.round == 37 and model_file.num_classes == 6 and model_file.entries["arch"] == "resnet18"
    assert model_file.entries["imported_from"] == {"file": "ref.pth.tar", "epoch": 37.0, "best_mAP": 0.899}
    assert model_file.config.model.last_stride == 2 and model_file.config.model.stem_relu is False
    loaded_teacher, loaded_student = load_model(out), load_model(out, which="student")
    for key, value in teacher.state_dict().items():
        assert torch.equal(loaded_teacher.state_dict()[key], value)
    for key, value in student.state_dict().items():
        assert torch.equal(loaded_student.state_dict()[key], value)


def test_convert_reference_checkpoint_without_classifier_or_student():
    teacher, _ = _models()
    state = {k: v for k, v in _reference_state(teacher).items() if "classifier" not in k}
    entries, _ = convert_reference_checkpoint({"state_dict": state}, arch="resnet18")
    assert "classifier.weight" not in entries["teacher"] and entries["student"] is entries["teacher"]
    assert entries["round"] == 0 and ReidModel(arch="resnet18", num_classes=0).load_state_dict(entries["teacher"])


def test_convert_reference_checkpoint_old_checkpoints_without_counters():
    teacher, _ = _models()
    state = {k: v for k, v in _reference_state(teacher).items() if not k.endswith("num_batches_tracked")}
    entries, _ = convert_reference_checkpoint({"state_dict": state}, arch="resnet18")
    assert entries["teacher"]["bn1.num_batches_tracked"].item() == 0


def test_convert_reference_checkpoint_unknown_and_missing_keys_are_listed():
    teacher, _ = _models()
    state = _reference_state(teacher)
    state["module.feat.weight"] = torch.zeros(2)
    with pytest.raises(AuxReidError, match=r"^ref has keys outside the reference layout \(base.0/1/3-6, feat_bn, "
                                           r"classifier\): module.feat.weight$"):
        rename_reference_keys(state, source="ref")
    del state["module.feat.weight"], state["module.base.6.1.conv2.weight"], state["module.feat_bn.weight"]
    with pytest.raises(AuxReidError, match=r"^ref state_dict does not fit a resnet18 ReidModel: missing keys "
                                           r"layer4.1.conv2.weight, neck.weight; check model.arch or the file$"):
        convert_reference_checkpoint({"state_dict": state}, arch="resnet18", source="ref")
    with pytest.raises(AuxReidError, match=r"^ref has no 'state_dict' entry \(it has: epoch, weights\)"):
        convert_reference_checkpoint({"epoch": 3, "weights": [1]}, source="ref")


def test_convert_reference_checkpoint_wrong_arch_is_an_error():
    teacher, _ = _models()
    with pytest.raises(AuxReidError, match=r"^ref state_dict does not fit a resnet50 ReidModel: missing keys "):
        convert_reference_checkpoint({"state_dict": _reference_state(teacher)}, arch="resnet50", source="ref")
