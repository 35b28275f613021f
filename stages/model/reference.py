"""The paper authors' checkpoint layout (Teng et al. 2022) mapped onto ReidModel names (pure: no files).

The reference saves a dict with `state_dict` (the mean teacher), usually `student_dict`, `epoch` and
`best_mAP`. Its network keeps the backbone in one `nn.Sequential` named `base`: `base.0` conv1,
`base.1` bn1, `base.2` maxpool (no parameters; there is no ReLU), `base.3`..`base.6` layer1..layer4,
then `feat_bn` (our `neck`) and an optional bias-free `classifier`. Keys may carry DataParallel's
`module.` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

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
    renamed: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
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
            `best_mAP`), or a bare reference state dict.
        arch: backbone the checkpoint was trained with.
        last_stride: layer4 stride of the reference run (not recoverable from the weights).
        source: named in error messages.

    Returns:
        (entries, config): `entries` holds `teacher`, `student` state dicts checked against a
        ReidModel, `round`, `imported_from`; `config` is the default config with this model section.

    Raises:
        AuxReidError: a missing `state_dict`, unknown or missing keys, wrong shapes (listed).
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
    student = teacher if student_raw is None else convert_reference_state(student_raw, source=f"{source} student_dict")
    num_classes = int(teacher["classifier.weight"].shape[0]) if "classifier.weight" in teacher else 0
    model_section = {"arch": arch, "last_stride": last_stride, "pretrained": "none"}
    config = build_config(({"model": model_section}, "import-weights"))
    model = build_model(config.model, num_classes=num_classes)
    check_state_fits(model, teacher, f"{source} state_dict")
    check_state_fits(model, student, f"{source} student_dict")
    info = {"file": Path(source).name}
    for key in ("epoch", "best_mAP"):
        if not is_bare and key in checkpoint:
            info[key] = float(checkpoint[key])
    entries = {
        "teacher": teacher,
        "student": student,
        "round": int(checkpoint.get("epoch", 0)) if not is_bare else 0,
        "imported_from": info,
    }
    return entries, config
