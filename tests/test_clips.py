"""Training clips loader: the right frames in order, worker-independent, resumable, bad files named."""

import numpy as np
import pytest
import torch
from PIL import Image

from stages.data.base import Tracklet
from stages.data.clips import ClipDataset, batch_clip_frames, clip_loader
from stages.errors import AuxReidError

H, W = 16, 8


def _tracklets(root, counts=(5, 2, 7, 3)):
    """JPEG tracklets whose frame f of tracklet i is a flat colour (32 i + 16, 32 f + 16, 128)."""
    tracklets = []
    for i, count in enumerate(counts):
        folder = root / f"t{i}"
        folder.mkdir(parents=True)
        frames = []
        for f in range(count):
            path = folder / f"{f:03d}.jpg"
            Image.new("RGB", (W, H), (32 * i + 16, 32 * f + 16, 128)).save(path, quality=95)
            frames.append(str(path))
        tracklets.append(Tracklet(frames=tuple(frames), person_id=-1, camera=i % 2, name=f"t{i}"))
    return tracklets


def _decoded_ids(clips):
    """(tracklet, frame) read back from the colours of (B, L, 3, H, W) clips."""
    mean = clips.float().mean(dim=(-1, -2))  # (B, L, 3)
    return torch.round((mean[..., 0] - 16) / 32).long(), torch.round((mean[..., 1] - 16) / 32).long()


BATCHES = np.array([[0, 2, 1, 3], [2, 2, 0, 1], [3, 0, 2, 1]])


def _loader(tracklets, **kw):
    args = dict(seq_len=4, seed=7, round=1, height=H, width=W, num_workers=0, pin_memory=False)
    return clip_loader(tracklets, BATCHES, **(args | kw))


def test_clip_dataset_returns_the_sampled_frames_in_order(tmp_path):
    tracklets = _tracklets(tmp_path)
    frames = batch_clip_frames(np.array([5, 2, 7, 3]), BATCHES, seq_len=4, seed=7, round=1)
    items = list(_loader(tracklets))
    assert [item.index for item in items] == [0, 1, 2]
    for b, item in enumerate(items):
        assert item.clips.shape == (4, 4, 3, H, W) and item.clips.dtype == torch.uint8
        assert item.rows.tolist() == BATCHES[b].tolist()
        tracklet, frame = _decoded_ids(item.clips)
        np.testing.assert_array_equal(tracklet.numpy(), np.repeat(BATCHES[b][:, None], 4, axis=1))
        np.testing.assert_array_equal(frame.numpy(), frames[b])
    # tracklets 1 and 3 (2 and 3 frames) cycle; 0 and 2 (5 and 7 frames) give consecutive runs
    assert frames[0, 2].tolist() == [0, 1, 0, 1] and frames[0, 3].tolist() == [0, 1, 2, 0]
    np.testing.assert_array_equal(np.diff(frames[0, :2], axis=1), 1)


def test_clip_dataset_decodes_each_distinct_frame_once(tmp_path):
    tracklets = _tracklets(tmp_path)
    batches = np.array([[1, 1]])
    frames = batch_clip_frames(np.array([5, 2, 7, 3]), batches, seq_len=4, seed=0, round=0)
    paths, owners, inverse = ClipDataset(tracklets, batches, frames, height=H, width=W).batch_paths(0)
    assert sorted(paths) == list(tracklets[1].frames) and owners.tolist() == [1, 1]
    assert [paths[i] for i in inverse[0]] == [tracklets[1].frames[f] for f in frames[0, 0]]


def test_clip_loader_same_with_workers(tmp_path):
    tracklets = _tracklets(tmp_path)
    main = list(_loader(tracklets))
    workers = list(_loader(tracklets, num_workers=2, prefetch_factor=1))
    assert [item.index for item in workers] == [0, 1, 2]
    for a, b in zip(main, workers):
        assert torch.equal(a.clips, b.clips) and torch.equal(a.rows, b.rows)


def test_clip_loader_start_iteration_skips_batches(tmp_path):
    tracklets = _tracklets(tmp_path)
    full = list(_loader(tracklets))
    resumed = _loader(tracklets, start_iteration=2)
    assert len(resumed) == 1
    (item,) = list(resumed)
    assert item.index == 2 and torch.equal(item.clips, full[2].clips)
    assert len(_loader(tracklets, start_iteration=3)) == 0


def test_clip_loader_shard_keeps_frames_of_full_batch(tmp_path):
    tracklets = _tracklets(tmp_path)
    full = list(_loader(tracklets))
    halves = [list(_loader(tracklets, rank=r, world=2, num_instances=2)) for r in range(2)]
    for b in range(3):
        assert torch.equal(torch.cat([halves[0][b].clips, halves[1][b].clips]), full[b].clips)


def test_clip_loader_corrupt_file_names_the_path(tmp_path):
    tracklets = _tracklets(tmp_path)
    bad = tracklets[3].frames[0]
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])
    tracklets[3] = Tracklet(frames=(bad,), person_id=-1, camera=1, name="t3")
    with pytest.raises(AuxReidError) as error:
        list(_loader(tracklets, num_workers=1))
    assert str(error.value).startswith(f"cannot read frame {bad} (train tracklet t3, batch 0): ")
    assert str(error.value).endswith("; fix or remove the file") and "\n" not in str(error.value)
