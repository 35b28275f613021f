"""Round 0's network: a seeded random init, then ImageNet weights or a user's weight file."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from stages.artifacts.model_file import MODEL_FORMAT
from stages.artifacts.weights_file import load_weights_only
from stages.config import Config
from stages.errors import AuxReidError
from stages.model.network import ReidModel, build_model
from stages.model.reference import convert_reference_state
from stages.model.resnet import IMAGENET_URLS
from stages.model.weights import check_state_fits

#: model.pretrained values that are not paths (matched in any letter case).
PRETRAINED_KEYWORDS = ("imagenet", "none")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision keeps (and this project looks for) the ImageNet weights of `arch`."""
    url = IMAGENET_URLS[arch]
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]


def _load_imagenet_backbone(arch: str) -> dict[str, torch.Tensor]:
    path = imagenet_weights_path(arch)
    if not path.is_file():
        url = IMAGENET_URLS[arch]
        raise AuxReidError(
            f"model.pretrained=imagenet needs torchvision's {arch} ImageNet weights, but {path.name} is not in "
            f"{path.parent} (no network access is attempted); download {url} into that folder (or set "
            "TORCH_HOME), or use --set model.pretrained=none for random initialisation"
        )
    state = load_weights_only(path)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _weight_file(value: str) -> Path:
    """The path model.pretrained names, refused in one line when there is no such file."""
    path = Path(value)
    if path.is_file():
        return path
    close = difflib.get_close_matches(value.lower(), PRETRAINED_KEYWORDS, n=1, cutoff=0.6)
    hint = f"did you mean model.pretrained={close[0]}?" if close else "give a weight file's path, imagenet or none"
    what = "is a folder" if path.is_dir() else "does not exist"
    raise AuxReidError(f"model.pretrained: weight file {path} {what}; {hint}")


def _state_from_path(path: Path) -> dict[str, torch.Tensor]:
    """Backbone/neck weights from an auxreid model.pt, a reference checkpoint or a plain state dict."""
    try:
        loaded = load_weights_only(path)
    except AuxReidError as exc:
        raise AuxReidError(f"model.pretrained: {exc}") from None
    if isinstance(loaded, Mapping) and loaded.get("format") == MODEL_FORMAT:
        teacher = loaded.get("teacher")
        if not isinstance(teacher, Mapping):
            raise AuxReidError(f"{path} is an auxreid model.pt whose 'teacher' is a {type(teacher).__name__}, "
                               "not a state dict; re-create it")
        return dict(teacher)
    reference = isinstance(loaded, Mapping) and any(str(k).startswith(("base.", "module.base.")) for k in loaded)
    if reference or (isinstance(loaded, Mapping) and "state_dict" in loaded):
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
    random init (both in any letter case, so `ImageNet` is not mistaken for a file); any other value is
    a path (auxreid model.pt, reference checkpoint or state dict).
    The neck and classifier keep their initialisation unless the file has them with matching shapes.

    Raises:
        AuxReidError: weights missing locally, unreadable, or not fitting the network.
    """
    with _seeded(config.seed):
        model = build_model(config.model, num_classes=num_classes)
    pretrained = config.model.pretrained
    keyword = pretrained.lower()
    if keyword == "none":
        return model
    if keyword == "imagenet":
        state, source = _load_imagenet_backbone(config.model.arch), imagenet_weights_path(config.model.arch).name
    else:
        state, source = _state_from_path(_weight_file(pretrained)), pretrained
    head = [k for k in model.state_dict() if k.startswith(("neck.", "classifier."))]
    classifier = state.get("classifier.weight", torch.empty(0))
    reusable = model.classifier is not None and classifier.shape == model.classifier.weight.shape
    state = {k: v for k, v in state.items() if reusable or not k.startswith("classifier.")}
    check_state_fits(model, state, f"model.pretrained {source}", optional=tuple(head))
    model.load_state_dict(state, strict=False)
    return model


