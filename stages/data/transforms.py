"""Training augmentation of decoded clips on the compute device: flip, pad + crop, random erasing.

Training adds a horizontal flip (p 0.5), zero padding by `pad` pixels with a random crop
back to the frame size, and random erasing (p 0.5) to the ImageNet-normalised frames. The semantics
are torchvision.transforms.v2's RandomHorizontalFlip, Pad (constant 0) + RandomCrop, Normalize and
RandomErasing (scale (0.02, 0.33), ratio (0.3, 3.3) drawn log-uniformly, up to 10 attempts to fit the
rectangle, value 0 on the normalised tensor, i.e. the mean colour). Unlike torchvision, the whole
batch is transformed at once with per-clip parameters, and every frame of a clip shares its clip's
parameters: a tracklet is one video of one person, and an instance whose frames are flipped or
cropped differently would teach the temporal average something no test tracklet shows (the config
documents `train.flip` as one flip per sequence).

Parameters are drawn from a torch.Generator in a fixed order whatever the switches, so turning one
augmentation off leaves the others' draws unchanged; with a CPU generator they are the same on every
compute device.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from stages.data.frames import normalize_frames

FLIP_P = 0.5
ERASING_P = 0.5
ERASING_SCALE = (0.02, 0.33)
ERASING_RATIO = (0.3, 3.3)
#: Rectangles drawn per clip until one fits inside the frame (torchvision tries 10).
ERASING_ATTEMPTS = 10


@dataclass(frozen=True)
class AugmentParams:
    """Per-clip augmentation parameters, each a (n_clips,) tensor.

    Attributes:
        flip: bool, mirror the clip left-right.
        top, left: int64 in [0, 2 * pad], the crop's corner in the padded frame (pad, pad = no shift).
        erase: bool, erase a rectangle.
        erase_top, erase_left, erase_height, erase_width: int64, the rectangle (0 where not erased).
    """

    flip: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    erase: torch.Tensor
    erase_top: torch.Tensor
    erase_left: torch.Tensor
    erase_height: torch.Tensor
    erase_width: torch.Tensor


def draw_params(
    n_clips: int,
    height: int,
    width: int,
    *,
    flip: bool,
    pad: int,
    random_erasing: bool,
    generator: torch.Generator,
) -> AugmentParams:
    """Draw per-clip parameters; a switched-off augmentation gets neutral values.

    Args:
        n_clips: B.
        height, width: frame size.
        flip, pad, random_erasing: the switches (pad 0 = no pad + crop).
        generator: source of randomness; the parameters live on its device.

    Returns:
        AugmentParams with (B,) tensors on the generator's device.
    """
    kw = {"generator": generator, "device": generator.device}
    flips = torch.rand(n_clips, **kw) < FLIP_P
    corner = torch.randint(0, 2 * pad + 1, (2, n_clips), **kw)
    erase = torch.rand(n_clips, **kw) < ERASING_P
    area = height * width * torch.empty(n_clips, ERASING_ATTEMPTS, device=generator.device).uniform_(
        *ERASING_SCALE, generator=generator
    )
    log_ratio = torch.empty(n_clips, ERASING_ATTEMPTS, device=generator.device).uniform_(
        math.log(ERASING_RATIO[0]), math.log(ERASING_RATIO[1]), generator=generator
    )
    position = torch.rand(2, n_clips, **kw)
    heights = torch.sqrt(area * torch.exp(log_ratio)).round().long()
    widths = torch.sqrt(area / torch.exp(log_ratio)).round().long()
    fits = (heights < height) & (widths < width)
    attempt = fits.long().argmax(dim=1, keepdim=True)  # the first rectangle that fits
    erase &= fits.any(dim=1) & random_erasing
    h = torch.where(erase, heights.gather(1, attempt)[:, 0], 0)
    w = torch.where(erase, widths.gather(1, attempt)[:, 0], 0)
    return AugmentParams(
        flip=flips & flip,
        top=corner[0],  # randint(0, 1) when pad is 0: always 0, the same draws consumed
        left=corner[1],
        erase=erase,
        erase_top=(position[0] * (height - h + 1)).floor().long() * erase,
        erase_left=(position[1] * (width - w + 1)).floor().long() * erase,
        erase_height=h,
        erase_width=w,
    )


def apply_params(
    clips: torch.Tensor,
    params: AugmentParams,
    *,
    pad: int,
    device: torch.device | str,
    channels_last: bool = False,
) -> torch.Tensor:
    """Augment and normalise a batch of clips with given parameters.

    Args:
        clips: (B, T, 3, H, W) uint8 (any device; moved to `device`). Not modified.
        params: per-clip parameters from `draw_params` (for B clips, drawn with the same `pad`).
        pad: the padding the crop corners were drawn for.
        device: the compute device.
        channels_last: return the channels_last memory format.

    Returns:
        (B * T, 3, H, W) float32 on `device`, ImageNet-normalised, erased pixels 0.
    """
    device = torch.device(device)
    b, t, _, h, w = clips.shape
    p = {f.name: getattr(params, f.name).to(device) for f in dataclasses.fields(params)}
    x = clips.to(device, non_blocking=True)
    x = torch.where(p["flip"].view(b, 1, 1, 1, 1), x.flip(-1), x)
    if pad:
        x = _shift(x, p["top"] - pad, p["left"] - pad)
    out = normalize_frames(x.reshape(b * t, 3, h, w), device=device, channels_last=channels_last)
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    top, left = p["erase_top"].view(b, 1, 1), p["erase_left"].view(b, 1, 1)
    rows = (ys >= top) & (ys < top + p["erase_height"].view(b, 1, 1))
    inside = rows & (xs >= left) & (xs < left + p["erase_width"].view(b, 1, 1))  # (B, H, W)
    inside = inside.repeat_interleave(t, dim=0).unsqueeze(1)  # (B * T, 1, H, W)
    return out.masked_fill_(inside, 0.0)


def _shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[b, ..., y, x] = x[b, ..., y + dy[b], x + dx[b]], 0 outside the frame (pad + crop).

    Args:
        x: (B, T, C, H, W).
        dy, dx: (B,) int64 offsets.
    """
    b, t, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h) + dy.view(b, 1)
    cols = torch.arange(w, device=x.device).view(1, w) + dx.view(b, 1)
    x = x.gather(3, rows.clamp(0, h - 1).view(b, 1, 1, h, 1).expand(b, t, c, h, w))
    x = x.gather(4, cols.clamp(0, w - 1).view(b, 1, 1, 1, w).expand(b, t, c, h, w))
    valid = ((rows >= 0) & (rows < h)).view(b, 1, 1, h, 1) & ((cols >= 0) & (cols < w)).view(b, 1, 1, 1, w)
    return torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))


def augment_clips(
    clips: torch.Tensor,
    *,
    flip: bool,
    pad: int,
    random_erasing: bool,
    generator: torch.Generator,
    device: torch.device | str,
    channels_last: bool = False,
) -> torch.Tensor:
    """Training augmentation of a batch of clips, one set of random parameters per clip.

    Args:
        clips: (B, T, 3, H, W) uint8 decoded frames. Not modified.
        flip: random horizontal flip (p 0.5).
        pad: zero padding before the random crop back to (H, W); 0 switches pad + crop off.
        random_erasing: random erasing (p 0.5) on the normalised frames.
        generator: seeded torch.Generator; a CPU one gives the same parameters on every device.
        device: the compute device.
        channels_last: return the channels_last memory format.

    Returns:
        (B * T, 3, H, W) float32 on `device`, clip-major (frame t of clip i at row i * T + t).
    """
    if clips.dtype != torch.uint8 or clips.dim() != 5 or clips.shape[2] != 3:
        raise ValueError(f"clips must be (B, T, 3, H, W) uint8, got {tuple(clips.shape)} {clips.dtype}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, _, _, h, w = clips.shape
    params = draw_params(b, h, w, flip=flip, pad=pad, random_erasing=random_erasing, generator=generator)
    return apply_params(clips, params, pad=pad, device=device, channels_last=channels_last)
