"""import-weights: the reference's checkpoint layout (base.N, feat_bn, classifier) into model.pt."""

import numpy as np
import pytest
import torch

from stages.artifacts.model_file import read_model_file
from stages.artifacts.weights_file import load_weights_only
from stages.errors import AuxReidError
from stages.import_weights import run_import_weights
from stages.model.checkpoint import build_network, load_model
from stages.model.network import ReidModel
from stages.model.reference import KEY_MAP, convert_reference_checkpoint, rename_reference_keys

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


def _authors_checkpoint(teacher, student, *, teacher_classifier, student_classifier, with_student=True):
    """A file dict as the reference's save_checkpoint writes it (DataParallel prefixes, numpy scores)."""
    def state(model, keep):
        return {k: v for k, v in _reference_state(model).items() if keep or ".classifier." not in k}

    checkpoint = {"state_dict": state(teacher, teacher_classifier), "epoch": np.int64(12),
                  "best_top1": np.float64(0.875), "best_mAP": np.float32(0.75)}
    if with_student:
        checkpoint["student_dict"] = state(student, student_classifier)
    return checkpoint


@pytest.fixture(scope="module")
def five_class_models():
    return _models(num_classes=5)


@pytest.mark.parametrize("teacher_classifier", [True, False], ids=["teacher-cls", "teacher-no-cls"])
@pytest.mark.parametrize("student_classifier", [True, False, None], ids=["student-cls", "student-no-cls", "no-student"])
def test_convert_every_classifier_layout(five_class_models, teacher_classifier, student_classifier):
    """REMAIN_CLASSIFIER False saves the teacher without the classifier: it is sized from whichever holds it."""
    teacher, student = five_class_models
    checkpoint = _authors_checkpoint(teacher, student, teacher_classifier=teacher_classifier,
                                     student_classifier=bool(student_classifier),
                                     with_student=student_classifier is not None)
    entries, _ = convert_reference_checkpoint(checkpoint, arch="resnet18", source="model_best.pth.tar")
    assert entries["round"] == 12
    assert entries["imported_from"] == {"file": "model_best.pth.tar", "epoch": 12.0, "best_mAP": 0.75,
                                        "best_top1": 0.875}
    # Without a student_dict the teacher stands for both networks.
    origin = {"teacher": teacher, "student": student if student_classifier is not None else teacher}
    held = {"teacher": teacher_classifier, "student": bool(student_classifier)}
    for which in ("teacher", "student"):
        state = entries[which]
        network = ReidModel(arch="resnet18", num_classes=0 if "classifier.weight" not in state else 5)
        network.load_state_dict(state)  # strict: exactly the network's keys
        for key, value in origin[which].state_dict().items():
            if not key.startswith("classifier."):
                assert torch.equal(state[key], value), (which, key)
        if held["teacher"] or held["student"]:
            owner = which if held[which] else ("student" if which == "teacher" else "teacher")
            assert torch.equal(state["classifier.weight"], origin[owner].classifier.weight), which
        else:
            assert "classifier.weight" not in state


def test_import_weights_file_in_the_papers_layout(tmp_path, five_class_models):
    """The released files: teacher without classifier, student with it, numpy scores, DataParallel keys."""
    teacher, student = five_class_models
    checkpoint = _authors_checkpoint(teacher, student, teacher_classifier=False, student_classifier=True)
    torch.save(checkpoint, tmp_path / "model_best.pth.tar")
    out = run_import_weights(tmp_path / "model_best.pth.tar", out_path=tmp_path / "model.pt", arch="resnet18")
    model_file = read_model_file(out)
    assert model_file.num_classes == 5 and model_file.round == 12
    assert model_file.entries["imported_from"] == {"file": "model_best.pth.tar", "epoch": 12.0, "best_mAP": 0.75,
                                                   "best_top1": 0.875}
    loaded_teacher, loaded_student = build_network(model_file, "teacher"), build_network(model_file, "student")
    assert torch.equal(loaded_teacher.layer4[1].conv2.weight, teacher.layer4[1].conv2.weight)
    assert torch.equal(loaded_student.layer4[1].conv2.weight, student.layer4[1].conv2.weight)
    assert torch.equal(loaded_teacher.classifier.weight, student.classifier.weight)


def test_import_weights_classifiers_of_different_sizes_are_an_error():
    teacher, _ = _models(num_classes=5)
    _, student = _models(num_classes=7)
    checkpoint = {"state_dict": _reference_state(teacher), "student_dict": _reference_state(student)}
    with pytest.raises(AuxReidError, match=r"^ref: state_dict and student_dict have classifiers of different sizes "
                                           r"\(classifier.weight \(5, 512\) vs \(7, 512\)\); the file mixes two runs$"):
        convert_reference_checkpoint(checkpoint, arch="resnet18", source="ref")


@pytest.mark.parametrize(("value", "message"), [
    ("abc", r"^ref 'best_mAP' is str 'abc', expected a number$"),
    (np.float64("nan"), r"^ref 'best_mAP' is nan, expected a finite number$"),
    ([0.5], r"^ref 'best_mAP' is list '\[0.5\]', expected a number$"),
])
def test_convert_reference_checkpoint_scores_must_be_finite_numbers(value, message):
    teacher, _ = _models()
    with pytest.raises(AuxReidError, match=message):
        convert_reference_checkpoint({"state_dict": _reference_state(teacher), "best_mAP": value},
                                     arch="resnet18", source="ref")


def test_convert_reference_checkpoint_epoch_must_be_a_whole_number():
    teacher, _ = _models()
    with pytest.raises(AuxReidError, match=r"^ref has 'epoch' = 2.5; expected a whole number >= 0$"):
        convert_reference_checkpoint({"state_dict": _reference_state(teacher), "epoch": np.float64(2.5)},
                                     arch="resnet18", source="ref")
    entries, _ = convert_reference_checkpoint({"state_dict": _reference_state(teacher), "epoch": torch.tensor(4)},
                                              arch="resnet18", source="ref")
    assert entries["round"] == 4


def test_convert_reference_checkpoint_state_dict_that_is_not_a_mapping():
    with pytest.raises(AuxReidError, match=r"^ref student_dict is a str, expected a state dict \(parameter names "
                                           r"-> tensors\)$"):
        convert_reference_checkpoint({"state_dict": _reference_state(_models()[0]), "student_dict": "oops"},
                                     arch="resnet18", source="ref")


def _scalars_named_under(path, module):
    """Make the file name numpy's scalar function under `module` ("numpy.core": numpy 1 wrote it,
    "numpy._core": numpy 2), whichever numpy runs the test; GLOBAL opcodes are plain text."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    pickled = next(name for name in members if name.endswith("/data.pkl"))
    members[pickled], count = re.subn(rb"numpy\._?core\.multiarray\nscalar\n",
                                      module.encode() + b".multiarray\nscalar\n", members[pickled])
    assert count == 1
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("module", ["numpy.core", "numpy._core"], ids=["written-by-numpy1", "written-by-numpy2"])
def test_numpy_scalars_load_whichever_numpy_wrote_them(tmp_path, module):
    """Released checkpoints were written with numpy 1 (numpy.core); today's files name numpy._core."""
    scores = {"epoch": np.int64(3), "best_mAP": np.float64(0.5), "best_top1": np.float32(0.25), "flag": np.bool_(True)}
    torch.save({"weights": torch.arange(4.0), **scores}, tmp_path / "scores.pt")
    _scalars_named_under(tmp_path / "scores.pt", module)
    loaded = load_weights_only(tmp_path / "scores.pt")
    assert {k: (type(v), v) for k, v in loaded.items() if k != "weights"} == {
        k: (type(v), v) for k, v in scores.items()}
    assert torch.equal(loaded["weights"], torch.arange(4.0))


def test_numpy_scalars_load_without_numpy_core_underscore(tmp_path, monkeypatch):
    """numpy 1.24-1.26 have numpy.core but no numpy._core: the loader must not need the latter."""
    import types

    import stages.artifacts.weights_file as weights

    real = np._core if hasattr(np, "_core") else np.core
    numpy1 = types.SimpleNamespace(dtype=np.dtype, core=types.SimpleNamespace(multiarray=real.multiarray))
    monkeypatch.setattr(weights, "np", numpy1)
    assert not hasattr(weights.np, "_core")
    scalar_names = sorted(name for entry in weights.numpy_safe_globals() if isinstance(entry, tuple)
                          for name in entry[1:])
    assert scalar_names == ["numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar"]
    torch.save({"best_mAP": np.float64(0.625)}, tmp_path / "scores.pt")
    _scalars_named_under(tmp_path / "scores.pt", "numpy.core")
    assert load_weights_only(tmp_path / "scores.pt") == {"best_mAP": 0.625}
