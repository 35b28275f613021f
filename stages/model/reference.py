"""The paper authors' checkpoint layout (Teng et al. 2022) mapped onto ReidModel names (pure: no files).

The reference saves a dict with `state_dict` (the mean teacher), usually `student_dict`, `epoch`,
`best_mAP` and `best_top1` (plain or numpy scalars). With `REMAIN_CLASSIFIER: False`, as in the paper's
configs, the teacher is saved without its classifier and the student with it. Its network keeps the backbone in one `nn.Sequential` named `base`: `base.0` conv1,
`base.1` bn1, `base.2` maxpool (no parameters; there is no ReLU), `base.3`..`base.6` layer1..layer4,
then `feat_bn` (our `neck`) and an optional bias-free `classifier`. Keys may carry DataParallel's
`module.` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from stages.config import Config, build_config
from stages.errors import AuxReidError
from stages.model.network import build_model
from stages.model.weights import check_state_fits

#: Reference prefix -> ReidModel prefix.
KEY_MAP = {
    "base.0.": "conv1.",
    "base.1.": "bn1.",
    "base.3.": "layer1.",
    "base.4.": "layer2.",
    "base.5.": "layer3.",
    "base.6.": "layer4.",
    "feat_bn.": "neck.",
    "classifier.": "classifier.",
}
#: Numbers the reference stores next to the weights (plain or numpy scalars), kept in `imported_from`.
_SCORES = ("epoch", "best_mAP", "best_top1")
#: Counters that checkpoints of old torch versions lack; filled with zeros when absent.
_OPTIONAL_SUFFIX = "num_batches_tracked"


def rename_reference_keys(state: Mapping[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Map reference key names to ReidModel names; keys outside the known layout are an error.

    Args:
        state: a reference state dict (optionally with `module.` prefixes).
        source: named in error messages.

    Returns:
        A new dict with ReidModel key names (the input is not modified).

    Raises:
        AuxReidError: listing every key that is not part of the reference layout.
    """
    if not isinstance(state, Mapping):
        raise AuxReidError(f"{source} is a {type(state).__name__}, expected a state dict (parameter names -> tensors)")
    renamed: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if not isinstance(key, str):
            unknown.append(repr(key))
            continue
        bare = key[len("module."):] if key.startswith("module.") else key
        prefix = next((p for p in KEY_MAP if bare.startswith(p)), None)
        if prefix is None or not isinstance(value, torch.Tensor):
            unknown.append(key)
            continue
        renamed[KEY_MAP[prefix] + bare[len(prefix):]] = value
    if unknown:
        raise AuxReidError(
            f"{source} has keys outside the reference layout (base.0/1/3-6, feat_bn, classifier): "
            f"{', '.join(unknown[:8])}{f' and {len(unknown) - 8} more' if len(unknown) > 8 else ''}"
        )
    return renamed


def convert_reference_state(state: Mapping[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Rename a reference state dict and add the zero counters old checkpoints lack."""
    renamed = rename_reference_keys(state, source=source)
    for key in [k for k in renamed if k.endswith(".running_mean")]:
        counter = key[: -len("running_mean")] + _OPTIONAL_SUFFIX
        renamed.setdefault(counter, torch.tensor(0, dtype=torch.long))
    return renamed


def convert_reference_checkpoint(
    checkpoint: Mapping, *, arch: str = "resnet50", last_stride: int = 2, source: str = "checkpoint"
) -> tuple[dict, Config]:
    """Turn a loaded reference checkpoint into model.pt entries (pure: no files).

    Args:
        checkpoint: the dict the reference saved (`state_dict`, optional `student_dict`, `epoch`,
            `best_mAP`, `best_top1`), or a bare reference state dict. A classifier held by only one of
            the two state dicts is given to both.
        arch: backbone the checkpoint was trained with.
        last_stride: layer4 stride of the reference run (not recoverable from the weights).
        source: named in error messages.

    Returns:
        (entries, config): `entries` holds `teacher`, `student` state dicts checked against a
        ReidModel, `round`, `imported_from`; `config` is the default config with this model section.

    Raises:
        AuxReidError: a missing `state_dict`, unknown or missing keys, wrong shapes (listed), classifiers
            of different sizes, scores that are not finite numbers.
    """
    if not isinstance(checkpoint, Mapping):
        raise AuxReidError(f"{source} holds a {type(checkpoint).__name__}, expected the reference's dict of weights")
    is_bare = "state_dict" not in checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
    if "state_dict" not in checkpoint and not is_bare:
        raise AuxReidError(
            f"{source} has no 'state_dict' entry (it has: {', '.join(map(str, checkpoint))}); "
            "expected the reference's checkpoint dict"
        )
    teacher_raw = checkpoint if is_bare else checkpoint["state_dict"]
    teacher = convert_reference_state(teacher_raw, source=f"{source} state_dict")
    student_raw = None if is_bare else checkpoint.get("student_dict")
    if student_raw is None:
        student = teacher
    else:
        student = convert_reference_state(student_raw, source=f"{source} student_dict")
        teacher, student = _share_classifier(teacher, student, source)
    num_classes = int(teacher["classifier.weight"].shape[0]) if "classifier.weight" in teacher else 0
    model_section = {"arch": arch, "last_stride": last_stride, "pretrained": "none"}
    config = build_config(({"model": model_section}, "import-weights"))
    model = build_model(config.model, num_classes=num_classes)
    check_state_fits(model, teacher, f"{source} state_dict")
    check_state_fits(model, student, f"{source} student_dict")
    info: dict = {"file": Path(source).name}
    for key in _SCORES:
        if not is_bare and key in checkpoint:
            info[key] = _number(checkpoint[key], key, source)
    epoch = info.get("epoch", 0.0)
    if epoch < 0 or epoch != int(epoch):
        raise AuxReidError(f"{source} has 'epoch' = {epoch:g}; expected a whole number >= 0")
    entries = {
        "teacher": teacher,
        "student": student,
        "round": int(epoch),
        "imported_from": info,
    }
    return entries, config


def _share_classifier(
    teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor], source: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Give both networks the classifier that one of them holds.

    With `REMAIN_CLASSIFIER: False` (the paper's configs) the reference saves the teacher without its
    classifier but the student with it. The teacher is the student's running average and every round
    re-seeds the classifier rows from the cluster centroids, so the student's rows are a faithful stand-in.
    """
    names = sorted({k for k in (*teacher, *student) if k.startswith("classifier.")})
    in_teacher, in_student = [k for k in names if k in teacher], [k for k in names if k in student]
    if in_teacher and in_student:
        shapes = {k: (tuple(teacher[k].shape), tuple(student[k].shape)) for k in names if k in teacher and k in student}
        differ = [f"{k} {a} vs {b}" for k, (a, b) in shapes.items() if a != b]
        if differ:
            raise AuxReidError(
                f"{source}: state_dict and student_dict have classifiers of different sizes ({', '.join(differ)}); "
                "the file mixes two runs"
            )
        return teacher, student
    if in_student:
        return {**teacher, **{k: student[k] for k in in_student}}, student
    if in_teacher:
        return teacher, {**student, **{k: teacher[k] for k in in_teacher}}
    return teacher, student


def _number(value: object, key: str, source: str) -> float:
    """A finite number from a plain, numpy or 0-d tensor scalar (the reference saved any of these)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AuxReidError(f"{source} '{key}' is {type(value).__name__} {str(value)[:40]!r}, expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise AuxReidError(f"{source} '{key}' is {number}, expected a finite number")
    return number
