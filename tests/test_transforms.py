"""Clip augmentation: the authors' transform (torchvision flip/pad/crop, their random erasing), drawn per
frame or per clip, seeded."""

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from stages.data.frames import IMAGENET_MEAN, IMAGENET_STD
from stages.data.transforms import ERASING_FILL, ERASING_SCALE, apply_params, augment_clips, draw_params

B, T, H, W = 6, 3, 20, 10


def _clips(seed=0, b=B, h=H, w=W):
    return torch.randint(0, 256, (b, T, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _params(n=B, seed=0, **switches):
    args = dict(flip=True, pad=3, random_erasing=True) | switches
    return draw_params(n, H, W, generator=torch.Generator().manual_seed(seed), **args)


def _torchvision(clips, params, pad):
    """The same augmentation, one frame at a time with torchvision's functional ops (unit = clip or frame)."""
    per_frame = len(params.flip) == clips.shape[0] * clips.shape[1]
    fill = torch.tensor(ERASING_FILL).view(3, 1, 1)
    frames = []
    for i in range(len(clips)):
        for t in range(clips.shape[1]):
            u = i * clips.shape[1] + t if per_frame else i
            x = clips[i, t]
            x = TF.horizontal_flip(x) if params.flip[u] else x
            x = TF.crop(TF.pad(x, [pad], fill=0), int(params.top[u]), int(params.left[u]), H, W)
            x = TF.normalize(TF.to_dtype(x, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
            if params.erase[u]:
                p = [int(getattr(params, f"erase_{k}")[u]) for k in ("top", "left", "height", "width")]
                x = TF.erase(x, *p, v=fill)
            frames.append(x)
    return torch.stack(frames)


@pytest.mark.parametrize("units", [B, B * T], ids=["per clip", "per frame"])
def test_apply_params_matches_torchvision_frame_by_frame(units):
    clips = _clips()
    params = _params(n=units)
    assert params.flip.any() and not params.flip.all() and params.erase.any() and not params.erase.all()
    out = apply_params(clips, params, pad=3, device="cpu")
    torch.testing.assert_close(out, _torchvision(clips, params, pad=3), rtol=0, atol=1e-6)


def test_apply_params_refuses_parameters_for_another_batch():
    with pytest.raises(ValueError, match=r"^7 parameter sets fit neither the 6 clips nor their 18 frames$"):
        apply_params(_clips(), _params(n=7), pad=3, device="cpu")


def test_apply_params_flip_flips_exactly_the_chosen_clips():
    clips = _clips()
    still = _params(flip=False, pad=0, random_erasing=False)
    params = dataclasses.replace(still, flip=torch.tensor([1, 0, 0, 1, 1, 0]).bool())
    out = apply_params(clips, params, pad=0, device="cpu").view(B, T, 3, H, W)
    plain = apply_params(clips, still, pad=0, device="cpu").view(B, T, 3, H, W)
    for i, flipped in enumerate(params.flip.tolist()):
        assert torch.equal(out[i], plain[i].flip(-1) if flipped else plain[i])


def test_draw_params_crop_offsets_in_range_and_identity_without_pad():
    params = _params(n=500, pad=4)
    for corner in (params.top, params.left):
        assert corner.min() == 0 and corner.max() == 8
    still = _params(pad=0, flip=False, random_erasing=False)
    assert not still.top.any() and not still.left.any()
    clips = _clips()
    frames = TF.to_dtype(clips.view(B * T, 3, H, W), torch.float32, scale=True)
    expected = TF.normalize(frames, IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(apply_params(clips, still, pad=0, device="cpu"), expected, rtol=0, atol=1e-6)


def test_apply_params_pad_crop_shifts_with_zero_fill():
    clips = torch.full((1, 1, 3, H, W), 255, dtype=torch.uint8)
    still = _params(n=1, flip=False, random_erasing=False)
    params = dataclasses.replace(still, top=torch.tensor([0]), left=torch.tensor([5]))
    out = apply_params(clips, params, pad=3, device="cpu")[0, 0]
    black, white = -IMAGENET_MEAN[0] / IMAGENET_STD[0], (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert torch.allclose(out[:3], torch.tensor(black)) and torch.allclose(out[3:, : W - 2], torch.tensor(white))
    assert torch.allclose(out[:, W - 2 :], torch.tensor(black))  # shifted left by 2, zero fill at the right


def test_draw_params_erasing_rectangles_in_bounds_and_area_range():
    height, width = 128, 64
    params = draw_params(400, height, width, flip=True, pad=10, random_erasing=True,
                         generator=torch.Generator().manual_seed(1))
    e = params.erase
    assert 0.4 < e.float().mean() < 0.6
    assert (params.erase_top[e] + params.erase_height[e] <= height).all()
    assert (params.erase_left[e] + params.erase_width[e] <= width).all()
    assert (params.erase_height[e] < height).all() and (params.erase_width[e] < width).all()
    fraction = (params.erase_height[e] * params.erase_width[e]).float() / (height * width)
    assert fraction.min() >= ERASING_SCALE[0] * 0.8 and fraction.max() <= ERASING_SCALE[1] * 1.2
    assert not (params.erase_height[~e].any() or params.erase_width[~e].any())


def test_augment_clips_per_clip_frames_share_parameters_per_frame_they_do_not():
    clips = _clips()[:, :1].expand(B, T, 3, H, W)  # every frame of a clip identical
    kwargs = dict(flip=True, pad=3, random_erasing=True, device="cpu")
    per_clip = augment_clips(clips, generator=torch.Generator().manual_seed(2), per="clip", **kwargs).view(B, T, 3, H, W)
    for t in range(1, T):
        assert torch.equal(per_clip[:, t], per_clip[:, 0])
    per_frame = augment_clips(clips, generator=torch.Generator().manual_seed(2), **kwargs).view(B, T, 3, H, W)
    differing = sum(not torch.equal(per_frame[i, t], per_frame[i, 0]) for i in range(B) for t in range(1, T))
    assert differing >= B  # independent draws: most frames of a clip differ from its first


def test_random_erasing_is_the_authors_area_aspect_ratio_and_fill():
    """Area 0.02-0.4 uniform, aspect ratio h/w uniform in [0.3, 1/0.3]: mean 1.82 (1.75 once rectangles that do not
    fit are redrawn); torchvision's log-uniform ratio would give 1.26."""
    size = 2000
    params = draw_params(4000, size, size, flip=False, pad=0, random_erasing=True,
                         generator=torch.Generator().manual_seed(0))
    e = params.erase
    height, width = params.erase_height[e].double(), params.erase_width[e].double()
    area = height * width / size**2
    assert 0.02 * 0.99 <= area.min() and area.max() <= 0.4 * 1.01 and abs(float(area.mean()) - 0.21) < 0.01
    assert 1.65 < float((height / width).mean()) < 1.85
    clips = torch.zeros(1, 2, 3, H, W, dtype=torch.uint8)
    params = _params(n=2, flip=False, pad=0, random_erasing=False)
    params = dataclasses.replace(params, erase=torch.tensor([True, False]), erase_top=torch.tensor([1, 0]),
                                 erase_left=torch.tensor([2, 0]), erase_height=torch.tensor([3, 0]),
                                 erase_width=torch.tensor([4, 0]))
    out = apply_params(clips, params, pad=0, device="cpu")
    for channel, value in enumerate(ERASING_FILL):
        assert (out[0, channel, 1:4, 2:6] == value).all()
    assert int((out[0] != out[1]).sum()) == 3 * 3 * 4  # the second frame is not erased


def test_augment_clips_dtype_shape_normalisation():
    clips = _clips()
    before = clips.clone()
    out = augment_clips(clips, flip=False, pad=0, random_erasing=False, generator=torch.Generator().manual_seed(0),
                        device="cpu", channels_last=True)
    assert out.shape == (B * T, 3, H, W) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(out[T + 1], clips[1, 1].float() / 255 * 1 / std - mean / std)
    assert torch.equal(clips, before)


def test_augment_clips_deterministic_per_generator_seed():
    clips = _clips()

    def run(seed):
        return augment_clips(clips, flip=True, pad=3, random_erasing=True,
                             generator=torch.Generator().manual_seed(seed), device="cpu")

    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))


def test_draw_params_switches_leave_other_draws_unchanged():
    full = _params(seed=3)
    no_flip, no_erase = _params(seed=3, flip=False), _params(seed=3, random_erasing=False, pad=0)
    assert torch.equal(no_flip.top, full.top) and torch.equal(no_flip.erase_top, full.erase_top)
    assert torch.equal(no_erase.flip, full.flip) and not no_erase.erase.any()


def test_augment_clips_rejects_non_uint8():
    with pytest.raises(ValueError, match=r"clips must be \(B, T, 3, H, W\) uint8"):
        augment_clips(torch.zeros(2, 3, 3, 4, 4), flip=True, pad=0, random_erasing=False,
                      generator=torch.Generator(), device="cpu")
