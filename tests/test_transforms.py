"""Clip augmentation: torchvision semantics per clip, parameters shared by a clip's frames, seeded."""

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from stages.data.frames import IMAGENET_MEAN, IMAGENET_STD
from stages.data.transforms import ERASING_SCALE, apply_params, augment_clips, draw_params

B, T, H, W = 6, 3, 20, 10


def _clips(seed=0, b=B, h=H, w=W):
    return torch.randint(0, 256, (b, T, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _params(n=B, seed=0, **switches):
    args = dict(flip=True, pad=3, random_erasing=True) | switches
    return draw_params(n, H, W, generator=torch.Generator().manual_seed(seed), **args)


def _torchvision(clips, params, pad):
    """The same augmentation, one frame at a time with torchvision's functional ops."""
    frames = []
    for i in range(len(clips)):
        for t in range(clips.shape[1]):
            x = clips[i, t]
            x = TF.horizontal_flip(x) if params.flip[i] else x
            x = TF.crop(TF.pad(x, [pad], fill=0), int(params.top[i]), int(params.left[i]), H, W)
            x = TF.normalize(TF.to_dtype(x, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
            if params.erase[i]:
                p = [int(getattr(params, f"erase_{k}")[i]) for k in ("top", "left", "height", "width")]
                x = TF.erase(x, *p, v=torch.tensor(0.0))
            frames.append(x)
    return torch.stack(frames)


def test_apply_params_matches_torchvision_per_frame():
    clips = _clips()
    params = _params()
    assert params.flip.any() and not params.flip.all() and params.erase.any() and not params.erase.all()
    out = apply_params(clips, params, pad=3, device="cpu")
    torch.testing.assert_close(out, _torchvision(clips, params, pad=3), rtol=0, atol=1e-6)


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


def test_augment_clips_frames_of_a_clip_share_parameters():
    clips = _clips()[:, :1].expand(B, T, 3, H, W)  # every frame of a clip identical
    out = augment_clips(clips, flip=True, pad=3, random_erasing=True, generator=torch.Generator().manual_seed(2),
                        device="cpu").view(B, T, 3, H, W)
    for t in range(1, T):
        assert torch.equal(out[:, t], out[:, 0])


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
