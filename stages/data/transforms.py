"""Training augmentation of decoded clips on the compute device: flip, pad + crop, random erasing.

The authors' transform, applied to the whole batch at once: a horizontal flip (p 0.5), zero padding
by `pad` pixels and a random crop back to the frame size, ImageNet normalisation, then random erasing
(p 0.5) of a rectangle of 0.02-0.4 of the frame with an aspect ratio drawn uniformly in [0.3, 1/0.3]
(up to 100 attempts to fit it), filled with (0.485, 0.456, 0.406) in normalised space. The flip, crop
and pad follow torchvision's RandomHorizontalFlip, Pad (constant 0) and RandomCrop.

`per` chooses who shares one draw: "frame" (the authors': their dataset applies the image transform to
each frame, so the frames of one clip are flipped, cropped and erased independently) or "clip" (one
draw per clip, all its frames alike: a clip then looks like one video of one person, and the draw is
T times smaller). Parameters are drawn from a torch.Generator in a fixed order whatever the switches,
so turning one augmentation off leaves the others' draws unchanged; with a CPU generator they are the
same on every compute device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from stages.data.frames import normalize_frames

FLIP_P = 0.5
ERASING_P = 0.5
ERASING_SCALE = (0.02, 0.4)
ERASING_RATIO = (0.3, 1 / 0.3)
#: Rectangles drawn per image until one fits inside the frame (the authors try 100).
ERASING_ATTEMPTS = 100
#: What an erased pixel holds, per channel, in the normalised image (the authors' constant).
ERASING_FILL = (0.485, 0.456, 0.406)
#: Who shares one set of augmentation parameters (`train.augment_per`).
AUGMENT_UNITS = ("frame", "clip")


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation parameters per unit (a frame or a clip), each a (n_units,) tensor.

    Attributes:
        flip: bool, mirror the unit left-right.
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
    n_units: int,
    height: int,
    width: int,
    *,
    flip: bool,
    pad: int,
    random_erasing: bool,
    generator: torch.Generator,
) -> AugmentParams:
    """Draw parameters for `n_units` frames or clips; a switched-off augmentation gets neutral values.

    Args:
        n_units: how many parameter sets (B clips, or B x T frames).
        height, width: frame size.
        flip, pad, random_erasing: the switches (pad 0 = no pad + crop).
        generator: source of randomness; the parameters live on its device.

    Returns:
        AugmentParams with (n_units,) tensors on the generator's device.
    """
    kw = {"generator": generator, "device": generator.device}
    flips = torch.rand(n_units, **kw) < FLIP_P
    corner = torch.randint(0, 2 * pad + 1, (2, n_units), **kw)
    erase = torch.rand(n_units, **kw) < ERASING_P
    area = height * width * torch.empty(n_units, ERASING_ATTEMPTS, device=generator.device).uniform_(
        *ERASING_SCALE, generator=generator
    )
    ratio = torch.empty(n_units, ERASING_ATTEMPTS, device=generator.device).uniform_(*ERASING_RATIO, generator=generator)
    position = torch.rand(2, n_units, **kw)
    heights = torch.sqrt(area * ratio).round().long()
    widths = torch.sqrt(area / ratio).round().long()
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
    """Augment and normalise a batch of clips with given parameters, one set per clip or per frame.

    Args:
        clips: (B, T, 3, H, W) uint8 (any device; moved to `device`). Not modified.
        params: from `draw_params` for B clips (every frame of a clip alike) or for B x T frames
            (clip-major), drawn with the same `pad`.
        pad: the padding the crop corners were drawn for.
        device: the compute device.
        channels_last: return the channels_last memory format.

    Returns:
        (B * T, 3, H, W) float32 on `device`, ImageNet-normalised, erased pixels ERASING_FILL.
    """
    device = torch.device(device)
    b, t, _, h, w = clips.shape
    units = len(params.flip)
    if units not in (b, b * t):
        raise ValueError(f"{units} parameter sets fit neither the {b} clips nor their {b * t} frames")
    p = {f.name: getattr(params, f.name).to(device) for f in dataclasses.fields(params)}
    x = clips.to(device, non_blocking=True).reshape(units, -1, 3, h, w)
    x = torch.where(p["flip"].view(units, 1, 1, 1, 1), x.flip(-1), x)
    if pad:
        x = _shift(x, p["top"] - pad, p["left"] - pad)
    out = normalize_frames(x.reshape(b * t, 3, h, w), device=device, channels_last=channels_last)
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    top, left = p["erase_top"].view(units, 1, 1), p["erase_left"].view(units, 1, 1)
    rows = (ys >= top) & (ys < top + p["erase_height"].view(units, 1, 1))
    inside = rows & (xs >= left) & (xs < left + p["erase_width"].view(units, 1, 1))  # (units, H, W)
    inside = inside.repeat_interleave(b * t // units, dim=0)  # (B * T, H, W)
    for channel, value in enumerate(ERASING_FILL):
        out[:, channel].masked_fill_(inside, value)
    return out


def _shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[b, ..., y, x] = x[b, ..., y + dy[b], x + dx[b]], 0 outside the frame (pad + crop).

    Args:
        x: (U, T, C, H, W), U units of T frames.
        dy, dx: (U,) int64 offsets.
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
    per: str = "frame",
    channels_last: bool = False,
) -> torch.Tensor:
    """Training augmentation of a batch of clips, one set of random parameters per frame or per clip.

    Args:
        clips: (B, T, 3, H, W) uint8 decoded frames. Not modified.
        flip: random horizontal flip (p 0.5).
        pad: zero padding before the random crop back to (H, W); 0 switches pad + crop off.
        random_erasing: random erasing (p 0.5) on the normalised frames.
        generator: seeded torch.Generator; a CPU one gives the same parameters on every device.
        device: the compute device.
        per: "frame" (each frame its own draw, the authors') or "clip" (a clip's frames alike).
        channels_last: return the channels_last memory format.

    Returns:
        (B * T, 3, H, W) float32 on `device`, clip-major (frame t of clip i at row i * T + t).
    """
    if clips.dtype != torch.uint8 or clips.dim() != 5 or clips.shape[2] != 3:
        raise ValueError(f"clips must be (B, T, 3, H, W) uint8, got {tuple(clips.shape)} {clips.dtype}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if per not in AUGMENT_UNITS:
        raise ValueError(f"per must be one of {AUGMENT_UNITS}, got {per!r}")
    b, t, _, h, w = clips.shape
    units = b * t if per == "frame" else b
    params = draw_params(units, h, w, flip=flip, pad=pad, random_erasing=random_erasing, generator=generator)
    return apply_params(clips, params, pad=pad, device=device, channels_last=channels_last)
