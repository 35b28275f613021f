"""DukeMTMC-VideoReID and the synthetic camera network (same layout): `<split>/<pid>/<tracklet>/<frames>`.

Frame names carry the person, the camera, the frame's rank in its tracklet and its frame number X in
that camera's video, in two spellings: `0001C6F0099X30823.jpg` and `0001_C6_F0099_X30823.jpg`.
Camera clocks are synchronised by per-camera start offsets: global frame =
X + offset(camera) - 1, seconds = global frame / fps.
"""

from __future__ import annotations

import json
import math
import os
import re

from stages.data.base import DatasetSplit, Tracklet, require_dir
from stages.data.dense import dense_train, split_dense
from stages.errors import AuxReidError

#: DukeMTMC start offsets of cameras 1..8 (camera 5 is the master clock).
DUKE_CAMERA_OFFSETS = (5543, 3607, 27244, 31182, 1, 22402, 18968, 46766)
DUKE_FPS = 59.94

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_FRAME_NAME = re.compile(r"(\d+)_?C(\d+)_?F(\d+)_?X(\d+)\.(?:jpe?g|png)", re.IGNORECASE)
_NAME_EXAMPLE = "0001C6F0099X30823.jpg or 0001_C6_F0099_X30823.jpg"
_LAYOUT = "hold <pid>/<tracklet>/<frames>.jpg folders"
_SPLIT_DIRS = ("train", "query", "gallery")


def load_duke(root: str, *, dense_step: int) -> DatasetSplit:
    """Parse DukeMTMC-VideoReID from its folder layout, with frame times on the global clock.

    Args:
        root: folder holding `train/`, `query/`, `gallery/`.
        dense_step: cut train tracklets into pieces of this many frames (0 keeps them whole).

    Raises:
        AuxReidError: missing folder, unparsable frame name, empty tracklet, mixed camera.
    """
    return read_duke_layout(
        root, name="duke", offsets=DUKE_CAMERA_OFFSETS, fps=DUKE_FPS, dense_step=dense_step, meta={}
    )


def load_synth(root: str, *, dense_step: int) -> DatasetSplit:
    """Parse a dataset written by `auxreid synth`, in the Duke or the MARS layout named by its synth.json.

    Args:
        root: the generator's output folder (holds `synth.json`).
        dense_step: as in `load_duke`, in either layout.

    Raises:
        AuxReidError: missing or malformed synth.json, or any error of the layout's reader.
    """
    settings = read_synth_json(require_dir(root, "hold synth.json; run `auxreid synth --out ROOT` first"))
    offsets = tuple(settings["camera_offsets"])
    if settings["layout"] == "mars":
        from stages.data.mars import read_mars_layout  # deferred: mars.py imports scipy; the Duke layout never needs it

        return dense_train(read_mars_layout(root, name="synth", num_cameras=len(offsets), meta=settings), dense_step)
    return read_duke_layout(
        root, name="synth", offsets=offsets, fps=float(settings["fps"]), dense_step=dense_step, meta=settings
    )


def read_synth_json(root: str) -> dict:
    """The generator's settings, checked: layout, fps and one start offset per camera.

    Returns:
        The parsed synth.json (other keys kept as they are).
    """
    path = os.path.join(root, "synth.json")
    if not os.path.isfile(path):
        raise AuxReidError(f"{path} is missing: {root} is not a synthetic dataset; run `auxreid synth --out {root}`")
    try:
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AuxReidError(f"{path} is not valid JSON ({exc}); re-run `auxreid synth --out {root}`") from exc
    if not isinstance(settings, dict):
        raise AuxReidError(f"{path} must hold a JSON object; re-run `auxreid synth --out {root}`")
    if settings.get("layout") not in ("duke", "mars"):
        raise AuxReidError(f"{path}: layout is {settings.get('layout')!r}, expected 'duke' or 'mars'")
    fps = settings.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < math.inf:
        raise AuxReidError(f"{path}: fps is {fps!r}, expected a finite number > 0")
    offsets = settings.get("camera_offsets")
    if (
        not isinstance(offsets, list)
        or not offsets
        or not all(isinstance(o, int) and not isinstance(o, bool) and abs(o) < 2**53 for o in offsets)
    ):
        raise AuxReidError(f"{path}: camera_offsets is {offsets!r}, expected a non-empty list of integers (cameras 1..C)")
    return settings


def read_duke_layout(
    root: str,
    *,
    name: str,
    offsets: tuple[int, ...],
    fps: float,
    dense_step: int,
    meta: dict,
) -> DatasetSplit:
    """Read the three split folders; train is cut into dense pieces when `dense_step` > 0.

    Args:
        root: folder holding `train/`, `query/`, `gallery/`.
        name: dataset name recorded in the split (and its fingerprint).
        offsets: start offset of cameras 1..C in frames; C is the number of cameras.
        fps: frames per second of the camera videos.
        dense_step: train piece length in frames (0 keeps tracklets whole).
        meta: extra facts kept in `DatasetSplit.meta`.
    """
    if dense_step < 0:
        raise AuxReidError(f"dense_step is {dense_step}, expected >= 0 (0 keeps tracklets whole)")
    root = require_dir(root, "hold train/, query/, gallery/")
    splits = {
        which: _read_split(
            require_dir(os.path.join(root, which), _LAYOUT), offsets=offsets, fps=fps
        )
        for which in _SPLIT_DIRS
    }
    train = split_dense(splits["train"], step=dense_step) if dense_step else splits["train"]
    return DatasetSplit(
        name=name,
        root=root,
        train=train,
        query=splits["query"],
        gallery=splits["gallery"],
        has_times=True,
        num_cameras=len(offsets),
        fps=fps,
        meta={**meta, "camera_offsets": list(offsets), "dense_step": dense_step},
    )


def _subfolders(path: str) -> list[str]:
    """Names of the visible sub-folders, sorted (one scandir call)."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def _read_split(split_dir: str, *, offsets: tuple[int, ...], fps: float) -> tuple[Tracklet, ...]:
    tracklets = []
    for person in _subfolders(split_dir):
        person_dir = os.path.join(split_dir, person)
        if not person.isdigit():
            raise AuxReidError(f"person folder {person_dir} is not a number; {split_dir} should {_LAYOUT}")
        tracks = _subfolders(person_dir)
        if not tracks:
            raise AuxReidError(f"person folder {person_dir} has no tracklet folders; expected {person_dir}/<tracklet>/<frames>.jpg")
        for track in tracks:
            tracklets.append(
                _read_tracklet(
                    os.path.join(person_dir, track), name=f"{person}/{track}", person_id=int(person), offsets=offsets, fps=fps
                )
            )
    if not tracklets:
        raise AuxReidError(f"found no tracklets in {split_dir}; it should {_LAYOUT}")
    return tuple(tracklets)


def _read_tracklet(track_dir: str, *, name: str, person_id: int, offsets: tuple[int, ...], fps: float) -> Tracklet:
    """One tracklet folder: parse every frame name, check person and camera, order by F, time by X."""
    with os.scandir(track_dir) as entries:
        files = [e.name for e in entries if not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS)]
    if not files:
        raise AuxReidError(f"tracklet folder {track_dir} has no images (.jpg, .jpeg, .png); remove it or restore its frames")
    parsed = []
    for file in files:
        match = _FRAME_NAME.fullmatch(file)
        if match is None:
            raise AuxReidError(f"cannot parse frame name {os.path.join(track_dir, file)}; expected e.g. {_NAME_EXAMPLE}")
        if max(len(g) for g in match.groups()) > 18:
            raise AuxReidError(f"frame name {os.path.join(track_dir, file)} has a number of more than 18 digits; "
                               f"expected e.g. {_NAME_EXAMPLE}")
        pid, cam, rank, x = map(int, match.groups())
        parsed.append((rank, file, pid, cam, x))
    parsed.sort()
    _, first_file, _, camera, _ = parsed[0]
    for previous, (rank, file, pid, cam, _) in zip([None, *parsed], parsed):
        if previous is not None and previous[0] == rank:
            raise AuxReidError(f"tracklet {track_dir} has two frames numbered F{rank}: {previous[1]} and {file}; keep one")
        if pid != person_id:
            raise AuxReidError(f"frame {os.path.join(track_dir, file)} names person {pid} but lies in person folder {person_id}")
        if cam != camera:
            raise AuxReidError(
                f"tracklet {track_dir} mixes cameras {camera} ({first_file}) and {cam} ({file}); a tracklet has one camera"
            )
    if not 1 <= camera <= len(offsets):
        raise AuxReidError(
            f"frame {os.path.join(track_dir, first_file)} has camera {camera}, outside 1..{len(offsets)}"
        )
    offset = offsets[camera - 1] - 1
    prefix = track_dir + os.sep
    times = tuple((p[4] + offset) / fps for p in parsed)
    if not all(map(math.isfinite, times)):
        raise AuxReidError(f"frame {os.path.join(track_dir, first_file)}: its frame number at {fps:g} fps is not a "
                           "finite time in seconds; check the frame numbers and the fps")
    return Tracklet(
        frames=tuple(prefix + p[1] for p in parsed),
        person_id=person_id,
        camera=camera - 1,
        times=times,
        name=name,
    )
