"""Vectorised drawing of the synthetic camera network's person crops (appearance, camera look, frames).

Every identity has a fixed outfit (upper/lower colours and pattern, sleeves, shoes, hair, hat, bag,
body shape) drawn from a small palette, so outfits are distinct as combinations but share colours.
Every camera has a fixed look (background texture, colour cast, brightness, gamma, blur, noise,
person scale, preferred viewpoint). Frames are drawn all at once: per-frame parameters are gathered
into flat arrays, every body part is a shape evaluated on the whole batch into a part map, and the
pixels are gathered from per-frame palettes already toned by the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

#: Clothing palette (RGB) with how often it is worn on the upper and the lower body.
_CLOTHES = np.array(
    [
        (25, 25, 28), (70, 70, 75), (130, 130, 135), (225, 225, 220), (30, 40, 90), (50, 90, 170),
        (130, 170, 215), (70, 95, 140), (170, 35, 40), (100, 25, 35), (50, 120, 60), (100, 105, 55),
        (175, 160, 120), (110, 75, 45), (205, 190, 160), (220, 190, 50), (220, 140, 170), (110, 60, 140),
        (225, 120, 40),
    ],
    dtype=np.float32,
)
_UPPER_WEIGHTS = np.array([5, 3, 2, 3, 3, 2, 1.5, 1, 1.5, 1, 1, 1, 1.5, 1.5, 1, 0.7, 0.7, 0.7, 0.6])
_LOWER_WEIGHTS = np.array([6, 3, 2, 0.5, 3, 1, 0.3, 5, 0.3, 0.3, 0.3, 1, 2.5, 1.5, 1, 0.1, 0.2, 0.1, 0.1])
_SKIN = np.array([(235, 200, 175), (210, 165, 130), (170, 120, 85), (120, 80, 55)], dtype=np.float32)
_HAIR = np.array([(30, 25, 20), (70, 45, 30), (120, 85, 50), (200, 170, 110), (160, 160, 160)], dtype=np.float32)
_WALLS = np.array(
    [(150, 150, 145), (190, 180, 160), (120, 135, 120), (95, 100, 115), (170, 160, 140), (200, 200, 200),
     (110, 110, 105), (160, 120, 100), (90, 120, 80), (140, 160, 175)],
    dtype=np.float32,
)

#: Upper-body patterns, lower-body styles, bags and occluders (index = code in the arrays).
PATTERNS = ("solid", "hstripes", "vstripes", "twotone", "logo")
LOWER_STYLES = ("pants", "shorts", "skirt")
BAGS = ("none", "backpack", "shoulder", "handbag")
VIEWS = ("front", "back", "side")
OCCLUDERS = ("none", "pole", "bottom", "person")

#: Background strip width, in crop widths: the crop slides along it while the person walks.
BACKGROUND_WIDTHS = 5
#: Camera nuisance: ranges of the per-camera colour gain (per channel), brightness, gamma, contrast,
#: blur sigma (pixels), pixel noise sigma (0..255) and person height (fraction of the crop height).
CAMERA_GAIN = (0.93, 1.07)
CAMERA_BRIGHTNESS = (0.85, 1.12)
CAMERA_GAMMA = (0.9, 1.12)
CAMERA_CONTRAST = (0.85, 1.05)
CAMERA_BLUR = (0.0, 1.0)
CAMERA_NOISE = (2.0, 7.0)
CAMERA_SCALE = (0.82, 0.94)
#: Luminance texture of the backgrounds (sigma in 0..255 units), and how far every background is pulled
#: towards a neutral grey (0: raw materials, 1: plain grey): it sets how much a crop's background tells
#: about its camera.
BACKGROUND_TEXTURE = 9.0
BACKGROUND_MUTE = 0.6
_NEUTRAL = np.array([140.0, 140.0, 138.0], dtype=np.float32)
#: Blur kernel radius in pixels (the widest camera blur fits in it).
_BLUR_RADIUS = 2


@dataclass(frozen=True)
class Appearance:
    """Outfit and body of every identity; rows are identities, colours RGB in 0..255."""

    upper: np.ndarray  # (n, 3)
    upper2: np.ndarray  # (n, 3) second colour of the pattern
    pattern: np.ndarray  # (n,) index into PATTERNS
    stripe_freq: np.ndarray  # (n,) stripes per body height
    long_sleeves: np.ndarray  # (n,) bool
    lower: np.ndarray  # (n, 3)
    lower_style: np.ndarray  # (n,) index into LOWER_STYLES
    shoes: np.ndarray  # (n, 3)
    skin: np.ndarray  # (n, 3)
    hair: np.ndarray  # (n, 3)
    hat: np.ndarray  # (n,) bool
    hat_colour: np.ndarray  # (n, 3)
    bag: np.ndarray  # (n,) index into BAGS
    bag_colour: np.ndarray  # (n, 3)
    bag_side: np.ndarray  # (n,) -1 or +1
    width: np.ndarray  # (n,) body width factor
    torso: np.ndarray  # (n,) torso length as a fraction of the body height
    stature: np.ndarray  # (n,) body height factor within the crop


@dataclass(frozen=True)
class CameraLook:
    """Fixed look of every camera; rows are cameras."""

    background: np.ndarray  # (c, h, BACKGROUND_WIDTHS * w, 3) float32 in 0..255
    gain: np.ndarray  # (c, 3) colour cast
    brightness: np.ndarray  # (c,)
    gamma: np.ndarray  # (c,)
    contrast: np.ndarray  # (c,)
    blur: np.ndarray  # (c,) Gaussian sigma in pixels
    noise: np.ndarray  # (c,) pixel noise sigma in 0..255 units
    scale: np.ndarray  # (c,) mean person height as a fraction of the crop height
    view_prob: np.ndarray  # (c, 3) probability of each of VIEWS
    occlusion: np.ndarray  # (c,) probability that a tracklet is occluded


@dataclass(frozen=True)
class FrameTable:
    """Everything that varies per drawn frame; rows are frames (all tracklets concatenated)."""

    ident: np.ndarray  # (m,) row in Appearance
    camera: np.ndarray  # (m,) row in CameraLook
    view: np.ndarray  # (m,) index into VIEWS
    phase: np.ndarray  # (m,) gait phase in radians
    walk_dir: np.ndarray  # (m,) -1 or +1, the way a side view faces
    background_x: np.ndarray  # (m,) left edge of the crop on the background strip, pixels
    person_height: np.ndarray  # (m,) pixels
    top: np.ndarray  # (m,) pixels
    centre: np.ndarray  # (m,) pixels
    illumination: np.ndarray  # (m,) brightness factor of this tracklet
    occluder: np.ndarray  # (m,) index into OCCLUDERS
    occluder_x: np.ndarray  # (m,) pixels (pole/person: position; bottom: unused)
    occluder_size: np.ndarray  # (m,) pixels (pole/person: width; bottom: top edge)
    occluder_colour: np.ndarray  # (m, 3)


def _pick(rng: np.random.Generator, table: np.ndarray, weights: np.ndarray | None, n: int) -> np.ndarray:
    p = None if weights is None else weights / weights.sum()
    return table[rng.choice(len(table), size=n, p=p)]


def _jitter(rng: np.random.Generator, colours: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(colours + rng.normal(0.0, sigma, colours.shape), 0, 255).astype(np.float32)


def sample_appearance(n: int, rng: np.random.Generator) -> Appearance:
    """Draw `n` outfits and bodies from the shared palette (distinct combinations, shared colours).

    Returns:
        Appearance with `n` rows.
    """
    upper = _jitter(rng, _pick(rng, _CLOTHES, _UPPER_WEIGHTS, n), 10)
    return Appearance(
        upper=upper,
        upper2=_jitter(rng, _pick(rng, _CLOTHES, None, n), 10),
        pattern=rng.choice(len(PATTERNS), size=n, p=[0.4, 0.2, 0.12, 0.14, 0.14]),
        stripe_freq=rng.uniform(14, 22, n),
        long_sleeves=rng.random(n) < 0.55,
        lower=_jitter(rng, _pick(rng, _CLOTHES, _LOWER_WEIGHTS, n), 10),
        lower_style=rng.choice(len(LOWER_STYLES), size=n, p=[0.7, 0.18, 0.12]),
        shoes=_jitter(rng, _pick(rng, _CLOTHES[[0, 1, 3, 13]], None, n), 8),
        skin=_jitter(rng, _pick(rng, _SKIN, None, n), 6),
        hair=_jitter(rng, _pick(rng, _HAIR, np.array([4, 3, 2, 1, 1.0]), n), 6),
        hat=rng.random(n) < 0.2,
        hat_colour=_jitter(rng, _pick(rng, _CLOTHES, None, n), 10),
        bag=rng.choice(len(BAGS), size=n, p=[0.4, 0.3, 0.18, 0.12]),
        bag_colour=_jitter(rng, _pick(rng, _CLOTHES, _UPPER_WEIGHTS, n), 10),
        bag_side=rng.choice(np.array([-1.0, 1.0]), size=n),
        width=rng.uniform(0.8, 1.25, n),
        torso=rng.uniform(0.3, 0.38, n),
        stature=rng.uniform(0.93, 1.04, n),
    )


def _background(rng: np.random.Generator, height: int, strip: int) -> np.ndarray:
    """A scene strip, (h, strip, 3): segments of shared materials (walls above, ground below), texture.

    Materials come from one palette for all cameras, and a crop sees different segments as the
    person walks, so backgrounds differ between cameras without making each camera one colour.
    """
    y = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height
    x = np.arange(strip, dtype=np.float32)[None, :]
    edges = np.cumsum(rng.uniform(0.3, 0.9, strip // 4 + 2) * height)
    segment = np.searchsorted(edges, x[0], side="right")
    walls = _jitter(rng, _pick(rng, _WALLS, None, len(edges) + 1), 12)[segment]
    grounds = _jitter(rng, _pick(rng, _WALLS, None, len(edges) + 1), 12)[segment] * 0.8
    horizon = rng.uniform(0.55, 0.85)
    image = np.where((y > horizon)[..., None], grounds[None], walls[None]) * (0.85 + 0.3 * y)[..., None]
    cells = (height // 6 + 2, strip // 6 + 2)
    coarse = rng.normal(0, BACKGROUND_TEXTURE, cells)[..., None] + rng.normal(0, 3, cells + (3,))
    texture = zoom(coarse.astype(np.float32), (6, 6, 1), order=1)[:height, :strip]
    muted = _NEUTRAL + (image + texture - _NEUTRAL) * (1.0 - BACKGROUND_MUTE)
    return np.clip(muted, 0, 255).astype(np.float32)


def sample_cameras(n: int, rng: np.random.Generator, *, height: int, width: int) -> CameraLook:
    """Draw the fixed look of `n` cameras for crops of `height` x `width` pixels."""
    views = rng.dirichlet(np.full(3, 0.8), size=n) * 0.8 + 0.2 / 3
    return CameraLook(
        background=np.stack([_background(rng, height, BACKGROUND_WIDTHS * width) for _ in range(n)]),
        gain=rng.uniform(*CAMERA_GAIN, (n, 3)).astype(np.float32),
        brightness=rng.uniform(*CAMERA_BRIGHTNESS, n).astype(np.float32),
        gamma=rng.uniform(*CAMERA_GAMMA, n).astype(np.float32),
        contrast=rng.uniform(*CAMERA_CONTRAST, n).astype(np.float32),
        blur=rng.uniform(*CAMERA_BLUR, n).astype(np.float32),
        noise=rng.uniform(*CAMERA_NOISE, n).astype(np.float32),
        scale=rng.uniform(*CAMERA_SCALE, n).astype(np.float32),
        view_prob=views,
        occlusion=rng.uniform(0.1, 0.4, n),
    )


def frame_table(
    ident: np.ndarray,
    camera: np.ndarray,
    num_frames: np.ndarray,
    cameras: CameraLook,
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    junk: np.ndarray | None = None,
) -> FrameTable:
    """Per-frame drawing parameters of tracklets: per-tracklet draws, then walking motion per frame.

    Args:
        ident: (t,) appearance row of each tracklet.
        camera: (t,) camera of each tracklet.
        num_frames: (t,) frames of each tracklet.
        cameras: the camera looks.
        rng: source of every random draw.
        height, width: crop size in pixels.
        junk: (t,) bool; a junk tracklet is a bad detection that shows only the edge of a person.

    Returns:
        FrameTable with sum(num_frames) rows, tracklets in order, frames in order.
    """
    t = len(ident)
    junk = np.zeros(t, dtype=bool) if junk is None else junk
    view_cdf = np.cumsum(cameras.view_prob[camera], axis=1)
    view = (rng.random(t)[:, None] > view_cdf).sum(axis=1).clip(0, 2)
    walk_dir = rng.choice(np.array([-1.0, 1.0]), size=t)
    speed = rng.uniform(0.6, 1.6, t) * width / 32 * walk_dir
    strip = BACKGROUND_WIDTHS * width - width
    travel = speed * (num_frames - 1)
    start_x = rng.uniform(np.maximum(0, -travel), strip - np.maximum(0, travel))
    scale = cameras.scale[camera] * rng.uniform(0.95, 1.05, t)
    centre = width / 2 + rng.normal(0, 0.04, t) * width + junk * rng.choice([-0.6, 0.6], t) * width
    occluded = rng.random(t) < cameras.occlusion[camera]
    occluder = np.where(occluded, rng.integers(1, len(OCCLUDERS), t), 0)
    occluder_x = rng.uniform(0.05, 0.95, t) * width
    occluder_size = np.where(occluder == 2, rng.uniform(0.55, 0.8, t) * height, rng.uniform(0.1, 0.3, t) * width)
    occluder_colour = _jitter(rng, _pick(rng, np.concatenate([_CLOTHES, _WALLS * 0.6]), None, t), 12)

    rows = np.repeat(np.arange(t), num_frames)
    k = np.arange(len(rows)) - np.repeat(np.cumsum(num_frames) - num_frames, num_frames)
    m = len(rows)
    person_height = (scale[rows] * height * rng.uniform(0.97, 1.03, m)).astype(np.float32)
    pole_motion = np.where(occluder[rows] == 1, -speed[rows] * k, 0.0)
    return FrameTable(
        ident=ident[rows],
        camera=camera[rows],
        view=view[rows],
        phase=(rng.uniform(0, 2 * np.pi, t)[rows] + 1.25 * k).astype(np.float32),
        walk_dir=walk_dir[rows].astype(np.float32),
        background_x=start_x[rows] + speed[rows] * k,
        person_height=person_height,
        top=((height - person_height) / 2 + rng.normal(0, 0.6, m) * height / 64).astype(np.float32),
        centre=(centre[rows] + rng.normal(0, 0.5, m) * width / 32).astype(np.float32),
        illumination=rng.uniform(0.9, 1.1, t)[rows].astype(np.float32),
        occluder=occluder[rows],
        occluder_x=(occluder_x[rows] + pole_motion).astype(np.float32),
        occluder_size=occluder_size[rows].astype(np.float32),
        occluder_colour=occluder_colour[rows],
    )


#: A shape parameter: a number or per-frame values shaped (n,1,1).
Shape = float | np.ndarray

#: Labels of the per-pixel part map; each frame has its own colour for every label.
BACKGROUND, UPPER, UPPER2, LOWER, SHOES, SKIN, HAIR, HAT, BAG, OCCLUDER = range(10)


def _box(u: np.ndarray, v: np.ndarray, cu: Shape, cv: Shape, hu: Shape, hv: Shape) -> np.ndarray:
    """Axis-aligned box in body coordinates; arguments broadcast ((n,1,w), (n,h,1), (n,1,1) ...)."""
    return (np.abs(u - cu) <= hu) & (np.abs(v - cv) <= hv)


def _ellipse(u: np.ndarray, v: np.ndarray, cu: Shape, cv: Shape, ru: Shape, rv: Shape) -> np.ndarray:
    """Filled ellipse in body coordinates, centre (cu, cv), radii (ru, rv)."""
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _col(values: np.ndarray) -> np.ndarray:
    """Per-frame values (n,) as (n,1,1) so they broadcast over pixels (numbers become float32)."""
    values = np.asarray(values)
    return (values if values.dtype == bool else values.astype(np.float32))[:, None, None]


def _put(labels: np.ndarray, mask: np.ndarray, value: int | np.ndarray) -> np.ndarray:
    """Paint `value` (a label or a per-pixel label map) where `mask` holds, over `labels` (n,h,w)."""
    return np.where(mask, np.asarray(value, dtype=np.uint8), labels)


def _person_labels(f: FrameTable, look: Appearance, u: np.ndarray, v: np.ndarray,
                   shape: tuple[int, int, int]) -> np.ndarray:
    """Part map (n,h,w) of legs, shoes, skirt, torso, arms, head, hat and bag, back to front.

    Args:
        f: the frames.
        look: the outfits.
        u: (n,1,w) horizontal body coordinate (0 at the body axis, in body heights).
        v: (n,h,1) vertical body coordinate (0 at the top of the head, 1 at the soles).
        shape: (n, h, w).
    """
    i = f.ident
    front, back, side = (_col(f.view == k) for k in range(3))
    sidef = side.astype(np.float32)
    width = _col(look.width[i])
    half = width * 0.135 * (1.0 - 0.35 * sidef)
    hip = 0.16 + _col(look.torso[i])
    swing = np.sin(_col(f.phase))
    facing = _col(f.walk_dir)
    style = look.lower_style[i]
    labels = np.zeros(shape, dtype=np.uint8)

    leg_offset = np.where(side, 0.015, 0.06) * width
    knee = hip + np.where(_col(style == 1), 0.18, np.where(_col(style == 2), 0.0, 1.0))
    leg_colour = np.where(v < knee, np.uint8(LOWER), np.uint8(SKIN))
    for sign in (-1.0, 1.0):
        cu = sign * (leg_offset + 0.06 * sidef * swing)
        lift = 0.015 * (1 - sidef) * np.maximum(0.0, sign * swing)
        labels = _put(labels, _box(u, v, cu, (hip + 0.95 - lift) / 2, 0.05 * width, (0.95 - lift - hip) / 2), leg_colour)
        labels = _put(labels, _box(u, v, cu + 0.012 * facing * sidef, 0.965 - lift, 0.045, 0.03), SHOES)
    skirt = _col(style == 2) & (np.abs(u) <= half + (v - hip).clip(0, None) * 0.5) & (np.abs(v - hip - 0.12) <= 0.13)
    labels = _put(labels, skirt, LOWER)

    pattern = look.pattern[i]
    freq = _col(look.stripe_freq[i])
    second = (
        _col(pattern == 1) & (np.sin(2 * np.pi * (v - 0.16) * freq) > 0)
        | _col(pattern == 2) & (np.sin(2 * np.pi * u * freq) > 0) & ~side
        | _col(pattern == 3) & (v > (0.16 + hip) / 2)
        | _col(pattern == 4) & front & (np.abs(u) < 0.45 * half) & (np.abs(v - 0.27) < 0.05)
    )
    backpack = _col(look.bag[i] == 1)
    labels = _put(labels, _box(u, v, -facing * (half + 0.04), 0.3, 0.045, 0.11) & backpack & side, BAG)
    torso = _box(u, v, 0.0, (0.16 + hip) / 2, half, (hip - 0.16) / 2 + 0.01)
    labels = _put(labels, torso, np.where(second, np.uint8(UPPER2), np.uint8(UPPER)))

    sleeve_end = 0.17 + np.where(_col(look.long_sleeves[i]), 0.33, 0.1)
    arm_colour = np.where(v < sleeve_end, np.uint8(UPPER), np.uint8(SKIN))
    for sign in (-1.0, 1.0):
        arm_u = sign * (half + 0.03) * (1 - sidef) + sign * 0.03 * swing * sidef
        arm = _box(u, v, arm_u, 0.345, 0.028, 0.175) & (~side | (sign > 0))
        labels = _put(labels, arm, arm_colour)

    hair = (v < 0.05) | back & (v < 0.13) | side & (u * facing < -0.01)
    labels = _put(labels, _ellipse(u, v, 0.0, 0.08, 0.055, 0.075), np.where(hair, np.uint8(HAIR), np.uint8(SKIN)))
    labels = _put(labels, _box(u, v, 0.0, 0.03, 0.062, 0.03) & _col(look.hat[i]), HAT)

    bag_side = _col(look.bag_side[i])
    shoulder_bag = _col(look.bag[i] == 2)
    bag = (
        _box(u, v, 0.0, 0.3, 0.8 * half, 0.11) & backpack & back
        | (_box(u, v, 0.55 * half, 0.25, 0.012, 0.09) | _box(u, v, -0.55 * half, 0.25, 0.012, 0.09)) & backpack & front
        | _box(u, v, bag_side * (half + 0.05), 0.46, 0.045, 0.06) & shoulder_bag
        | (np.abs(v - 0.17 - (bag_side * u + half) * 0.9) < 0.015) & torso & shoulder_bag & ~side
        | _box(u, v, bag_side * (half + 0.045), 0.56, 0.035, 0.045) & _col(look.bag[i] == 3)
    )
    return _put(labels, bag, BAG)


def _occluder_labels(labels: np.ndarray, f: FrameTable, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Add the tracklet's occluder (pole, object across the bottom, or a passer-by at one edge)."""
    height, width = labels.shape[1:]
    edge = np.where(f.occluder_x < width / 2, 0.0, float(width))
    occluded = (
        _col(f.occluder == 1) & (np.abs(x - _col(f.occluder_x)) < _col(f.occluder_size) / 2)
        | _col(f.occluder == 2) & (y > _col(f.occluder_size))
        | _col(f.occluder == 3) & (np.abs(x - _col(edge)) < _col(f.occluder_size)) & (y > 0.1 * height)
    )
    return _put(labels, occluded, OCCLUDER)


def _palette(f: FrameTable, look: Appearance) -> np.ndarray:
    """(n, 10, 3) colour of every label in every frame (row BACKGROUND unused)."""
    i = f.ident
    parts = [np.zeros((len(i), 3), dtype=np.float32)] + [
        getattr(look, name)[i] for name in ("upper", "upper2", "lower", "shoes", "skin", "hair", "hat_colour", "bag_colour")
    ] + [f.occluder_colour]
    return np.stack(parts, axis=1).astype(np.float32)


def _tone(colours: np.ndarray, cameras: CameraLook, camera: np.ndarray) -> np.ndarray:
    """Apply each camera's gamma, contrast, colour gain and brightness to colours (n, ..., 3) in 0..255."""
    extra = (1,) * (colours.ndim - 2)
    gamma = cameras.gamma[camera].reshape(-1, *extra, 1)
    contrast = cameras.contrast[camera].reshape(-1, *extra, 1)
    gain = (cameras.gain[camera] * cameras.brightness[camera][:, None]).reshape(-1, *extra, 3)
    linear = (np.clip(colours, 0, 255) / np.float32(255.0)) ** gamma
    return ((linear - 0.5) * contrast + 0.5) * gain * np.float32(255.0)


def _blur(image: np.ndarray, sigma: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Gaussian blur over height and width with each camera's sigma (frames grouped by camera)."""
    out = image.copy()
    for cam in np.unique(camera):
        rows = camera == cam
        s = float(sigma[rows][0])
        if s > 0.05:
            out[rows] = gaussian_filter(image[rows], sigma=(0, s, s, 0), mode="nearest", truncate=_BLUR_RADIUS / s)
    return out


def render(f: FrameTable, look: Appearance, cameras: CameraLook, rng: np.random.Generator, *,
           height: int, width: int) -> np.ndarray:
    """Draw every frame of the table: part map, colours toned by the camera, background, blur, noise.

    The camera's tone curve acts per colour, so it is applied to the per-frame palette and to the
    camera backgrounds before the pixels are gathered (the same result as toning every pixel).

    Returns:
        (n, height, width, 3) uint8 RGB crops.
    """
    n = len(f.ident)
    y = (np.arange(height, dtype=np.float32) + 0.5)[None, :, None]
    x = (np.arange(width, dtype=np.float32) + 0.5)[None, None, :]
    scale = _col(f.person_height * look.stature[f.ident])
    labels = _person_labels(f, look, (x - _col(f.centre)) / scale, (y - _col(f.top)) / scale, (n, height, width))
    labels = _occluder_labels(labels, f, x, y)

    backgrounds = _tone(cameras.background, cameras, np.arange(len(cameras.background)))
    columns = np.clip(np.round(f.background_x).astype(np.int64)[:, None] + np.arange(width)[None, :], 0,
                      cameras.background.shape[2] - 1)
    scene = backgrounds[f.camera[:, None, None], np.arange(height)[None, :, None], columns[:, None, :]]
    colours = _tone(_palette(f, look), cameras, f.camera)[np.arange(n)[:, None, None], labels]
    image = np.where((labels == BACKGROUND)[..., None], scene, colours) * _col(f.illumination)[..., None]
    image = _blur(image, cameras.blur[f.camera], f.camera)
    image += rng.standard_normal(image.shape, dtype=np.float32) * cameras.noise[f.camera][:, None, None, None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
