"""The re-id network of DESIGN 4.2 (Teng et al. 2022 reference model) and the model.pt file format.

ResNet backbone (torchvision; ResNet-50 in the paper, 18/34 for CPU runs) with a configurable last
stride, the reference stem conv1 -> bn1 -> maxpool WITHOUT the ReLU after bn1 (the `stem_relu` switch
adds it), global average pooling -> f, a BatchNorm1d neck whose bias is frozen at zero -> bn_f, and a
bias-free classifier on bn_f with one output per train tracklet.

model.pt is a plain dict of tensors and scalars read with `torch.load(..., weights_only=True)`:
`{"format": "auxreid-model", "version": 1, "arch", "round", "config_yaml", "num_classes", "student",
"teacher", "step"}` plus optional extra entries (e.g. an optimizer state) that other stages add.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torchvision
import yaml
from torch import nn

from stages.artifacts.h5 import atomic_path
from stages.config import Config, ModelConfig, build_config, config_to_yaml
from stages.errors import AuxReidError

MODEL_FORMAT = "auxreid-model"
MODEL_VERSION = 1
ARCHS = ("resnet18", "resnet34", "resnet50")
#: Entries every model.pt holds; others may add more (an optimizer state, the import source).
_REQUIRED_KEYS = ("format", "version", "arch", "round", "config_yaml", "num_classes", "student", "teacher", "step")
#: BatchNorm counters that files saved by old torch versions lack.
_COUNTER = "num_batches_tracked"
#: Standard deviation of the classifier's initial weights (the reference's init.normal_(std=0.001)).
CLASSIFIER_INIT_STD = 1e-3

_IMAGENET_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
}


class ReidModel(nn.Module):
    """ResNet re-id model: `forward_features` gives pooled f, `forward_head` gives (bn_f, logits).

    Args:
        arch: one of ARCHS.
        num_classes: classifier outputs (number of train tracklets); 0 builds no classifier (an
            imported evaluation-only model).
        last_stride: stride of layer4's first block, 2 (paper) or 1.
        stem_relu: insert the ReLU after bn1 that the reference leaves out.
    """

    def __init__(self, *, arch: str = "resnet50", num_classes: int, last_stride: int = 2, stem_relu: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise AuxReidError(f"unknown model.arch '{arch}'; choose one of {', '.join(ARCHS)}")
        resnet = getattr(torchvision.models, arch)(weights=None)
        first = resnet.layer4[0]
        strided = first.conv2 if isinstance(first, torchvision.models.resnet.Bottleneck) else first.conv1
        strided.stride = (last_stride, last_stride)
        first.downsample[0].stride = (last_stride, last_stride)
        self.arch = arch
        self.conv1, self.bn1, self.maxpool = resnet.conv1, resnet.bn1, resnet.maxpool
        self.stem_relu = nn.ReLU(inplace=True) if stem_relu else nn.Identity()
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.feature_dim = resnet.fc.in_features
        self.neck = nn.BatchNorm1d(self.feature_dim)
        nn.init.ones_(self.neck.weight)
        nn.init.zeros_(self.neck.bias)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=CLASSIFIER_INIT_STD)

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone + global average pooling.

        Args:
            images: (batch, 3, height, width), normalised.

        Returns:
            f, (batch, feature_dim).
        """
        x = self.maxpool(self.stem_relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Neck and classifier.

        Args:
            features: f, (batch, feature_dim).

        Returns:
            bn_f (batch, feature_dim) and logits (batch, num_classes), or None without a classifier.
        """
        bn_f = self.neck(features)
        return bn_f, (self.classifier(bn_f) if self.classifier is not None else None)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns (f, bn_f, logits) for a batch of images."""
        features = self.forward_features(images)
        return (features, *self.forward_head(features))


def build_model(model: ModelConfig, *, num_classes: int, arch: str | None = None) -> ReidModel:
    """A randomly initialised ReidModel with the structure the config asks for."""
    return ReidModel(
        arch=arch or model.arch, num_classes=num_classes, last_stride=model.last_stride, stem_relu=model.stem_relu
    )


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision keeps (and this project looks for) the ImageNet weights of `arch`."""
    url = _IMAGENET_WEIGHTS[arch].url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]


def _load_imagenet_backbone(arch: str) -> dict[str, torch.Tensor]:
    path = imagenet_weights_path(arch)
    if not path.is_file():
        url = _IMAGENET_WEIGHTS[arch].url
        raise AuxReidError(
            f"model.pretrained=imagenet needs torchvision's {arch} ImageNet weights, but {path.name} is not in "
            f"{path.parent} (no network access is attempted); download {url} into that folder (or set "
            "TORCH_HOME), or use --set model.pretrained=none for random initialisation"
        )
    state = load_weights_only(path)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def load_weights_only(path: Path) -> Any:
    """torch.load with weights_only=True (numpy scalars allowed, as reference checkpoints hold them)."""
    if not Path(path).is_file():
        raise AuxReidError(f"model file {path} does not exist; check the path")
    scalar = np._core.multiarray.scalar
    safe = [np.dtype, scalar, (scalar, "numpy.core.multiarray.scalar")]
    safe += [type(np.dtype(kind)) for kind in (np.float64, np.float32, np.int64, np.int32)]
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise AuxReidError(f"{path} is not a readable torch file (UnpicklingError); re-create it") from None
        raise AuxReidError(
            f"{path} cannot be loaded with weights_only=True (it pickles the object {found.group(1)}); only "
            "tensors, numbers, strings and dicts are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise AuxReidError(f"{path} is not a readable torch file ({type(exc).__name__}); re-create it") from None


def check_state_fits(
    model: ReidModel, state: Mapping[str, torch.Tensor], source: str, *, optional: tuple[str, ...] = ()
) -> None:
    """Refuse a state dict whose keys or shapes do not fit `model`, listing the offenders.

    BatchNorm `num_batches_tracked` counters may be absent (files saved by old torch versions, such
    as torchvision's ImageNet weights); loading keeps the model's own counters then.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in optional and not k.endswith(_COUNTER)]
    unknown = [k for k in state if k not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unknown:
            parts.append(f"unknown keys {_listing(unknown)}")
        raise AuxReidError(
            f"{source} does not fit a {model.arch} ReidModel: {'; '.join(parts)}; check model.arch or the file"
        )
    wrong = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise AuxReidError(f"{source} has tensors of the wrong shape for a {model.arch} ReidModel: {_listing(wrong)}")


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _state_from_path(path: Path) -> dict[str, torch.Tensor]:
    """Backbone/neck weights from an auxreid model.pt, a reference checkpoint or a plain state dict."""
    loaded = load_weights_only(path)
    if isinstance(loaded, Mapping) and loaded.get("format") == MODEL_FORMAT:
        return dict(loaded["teacher"])
    reference = isinstance(loaded, Mapping) and any(str(k).startswith(("base.", "module.base.")) for k in loaded)
    if reference or (isinstance(loaded, Mapping) and "state_dict" in loaded):
        from stages.import_weights import convert_reference_state

        return convert_reference_state(loaded.get("state_dict", loaded), source=str(path))
    if isinstance(loaded, Mapping) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return {k: v for k, v in loaded.items() if not k.startswith("fc.")}
    raise AuxReidError(
        f"model.pretrained file {path} is neither an auxreid model.pt nor a state dict of tensors; "
        "convert a reference checkpoint with `auxreid import-weights`"
    )


def initial_model(config: Config, *, num_classes: int) -> ReidModel:
    """Round 0's network: random init seeded by config.seed, then `model.pretrained` weights.

    `imagenet` loads torchvision's backbone weights from the local torch cache; `none` keeps the
    random init; any other value is a path (auxreid model.pt, reference checkpoint or state dict).
    The neck and classifier keep their initialisation unless the file has them with matching shapes.

    Raises:
        AuxReidError: weights missing locally, unreadable, or not fitting the network.
    """
    with _seeded(config.seed):
        model = build_model(config.model, num_classes=num_classes)
    pretrained = config.model.pretrained
    if pretrained == "none":
        return model
    if pretrained == "imagenet":
        state, source = _load_imagenet_backbone(config.model.arch), imagenet_weights_path(config.model.arch).name
    else:
        state, source = _state_from_path(Path(pretrained)), pretrained
    head = [k for k in model.state_dict() if k.startswith(("neck.", "classifier."))]
    classifier = state.get("classifier.weight", torch.empty(0))
    reusable = model.classifier is not None and classifier.shape == model.classifier.weight.shape
    state = {k: v for k, v in state.items() if reusable or not k.startswith("classifier.")}
    check_state_fits(model, state, f"model.pretrained {source}", optional=tuple(head))
    model.load_state_dict(state, strict=False)
    return model


def _cpu_state(module_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def save_model(
    path: str | Path,
    *,
    student: nn.Module | Mapping[str, torch.Tensor],
    teacher: nn.Module | Mapping[str, torch.Tensor],
    config: Config,
    round: int,
    step: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write model.pt atomically (tensors on CPU); `extra` adds entries such as an optimizer state.

    Returns:
        The final path.
    """
    teacher_state = _cpu_state(teacher)
    payload: dict[str, Any] = dict(extra or {})
    clash = [k for k in payload if k in _REQUIRED_KEYS]
    if clash:
        raise ValueError(f"extra entries may not replace model.pt keys: {clash}")
    payload.update(
        format=MODEL_FORMAT,
        version=MODEL_VERSION,
        arch=config.model.arch,
        round=int(round),
        config_yaml=config_to_yaml(config),
        num_classes=int(teacher_state["classifier.weight"].shape[0]) if "classifier.weight" in teacher_state else 0,
        student=_cpu_state(student),
        teacher=teacher_state,
        step=int(step),
    )
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


@dataclass(frozen=True)
class ModelFile:
    """A validated model.pt: its entries plus the config that made it."""

    path: Path
    entries: dict[str, Any]
    config: Config

    @property
    def round(self) -> int:
        return int(self.entries["round"])

    @property
    def num_classes(self) -> int:
        return int(self.entries["num_classes"])

    def build(self, which: str = "teacher") -> ReidModel:
        """The network with the `which` ('teacher' or 'student') weights, in eval mode, on CPU."""
        if which not in ("teacher", "student"):
            raise ValueError(f"which must be 'teacher' or 'student', got {which!r}")
        model = build_model(self.config.model, num_classes=self.num_classes, arch=self.entries["arch"])
        state = self.entries[which]
        check_state_fits(model, state, f"{self.path} ({which})")
        model.load_state_dict(state)
        return model.eval()


def read_model_file(path: str | Path) -> ModelFile:
    """Load and validate model.pt (weights_only=True).

    Raises:
        AuxReidError: missing file, not weights-only, not an auxreid model, wrong version.
    """
    path = Path(path)
    entries = load_weights_only(path)
    if not isinstance(entries, Mapping) or entries.get("format") != MODEL_FORMAT:
        raise AuxReidError(
            f"{path} is not an auxreid model file; convert a reference checkpoint with `auxreid import-weights`"
        )
    if entries.get("version") != MODEL_VERSION:
        raise AuxReidError(f"{path} is model format version {entries.get('version')}, this auxreid reads {MODEL_VERSION}")
    missing = [k for k in _REQUIRED_KEYS if k not in entries]
    if missing:
        raise AuxReidError(f"{path} lacks the model.pt entries {', '.join(missing)}; re-create it")
    return ModelFile(path=path, entries=dict(entries), config=config_from_yaml(entries["config_yaml"], str(path)))


def config_from_yaml(text: str, source: str, overrides: Mapping | None = None) -> Config:
    """The full Config frozen in a model.pt (or any YAML text), with optional overrides on top."""
    data = yaml.safe_load(text) or {}
    return build_config((data, f"{source} config"), (dict(overrides or {}), "--set"))


def load_model(path: str | Path, *, which: str = "teacher", device: torch.device | str = "cpu") -> ReidModel:
    """The `which` network of a model.pt, in eval mode, on `device`."""
    return read_model_file(path).build(which).to(device)


def write_initial_model(config: Config, path: str | Path) -> Path:
    """Round 0's model.pt (student = teacher = initial weights), sized to the train tracklets.

    Called by `auxreid init`; loads the dataset only to count its train tracklets.
    """
    from stages.data import load_dataset

    num_classes = len(load_dataset(config.data).train)
    model = initial_model(config, num_classes=num_classes)
    return save_model(path, student=model, teacher=model, config=config, round=0, step=0)
