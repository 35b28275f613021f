"""Frame decoding: bicubic resize, ImageNet normalisation, unreadable files reported with their names."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers_frames import write_frames
from stages.data.frames import FrameChunks, frame_loader, normalize_frames, read_frame
from stages.errors import AuxReidError


def _truncated_jpeg(tmp_path):
    good = write_frames(tmp_path / "src", 1, seed=0, ext="jpg")[0]
    data = open(good, "rb").read()
    path = tmp_path / "broken.jpg"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def test_read_frame_resizes_bicubic_like_pil(tmp_path):
    path = write_frames(tmp_path, 1, seed=1, size=(20, 10))[0]
    frame = read_frame(path, height=32, width=16)
    expected = np.asarray(Image.open(path).convert("RGB").resize((16, 32), Image.BICUBIC))
    assert frame.shape == (32, 16, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, expected)


def test_read_frame_truncated_jpeg_names_the_file(tmp_path):
    path = _truncated_jpeg(tmp_path)
    with pytest.raises(AuxReidError) as error:
        read_frame(path, height=32, width=16)
    assert str(error.value) == f"cannot read frame {path}: Truncated File Read"
    with pytest.raises(AuxReidError, match=r"^cannot read frame .*missing.png: \[Errno 2\] No such file or directory"):
        read_frame(str(tmp_path / "missing.png"), height=32, width=16)


def test_frame_chunks_report_bad_frames_without_raising(tmp_path):
    good = write_frames(tmp_path, 2, seed=2)
    bad = _truncated_jpeg(tmp_path)
    item = FrameChunks([(good[0], bad, good[1])], height=8, width=4)[0]
    assert item.index == 0 and item.images.shape == (3, 3, 8, 4) and item.images.dtype == torch.uint8
    assert item.ok.tolist() == [True, False, True]
    assert item.errors == ((1, "Truncated File Read"),)
    assert int(item.images[1].sum()) == 0
    np.testing.assert_array_equal(item.images[2].permute(1, 2, 0).numpy(), read_frame(good[1], height=8, width=4))


def test_frame_loader_workers_match_main_process(tmp_path):
    paths = write_frames(tmp_path, 5, seed=3)
    chunks = [paths[:2], paths[2:]]
    main = list(frame_loader(chunks, height=8, width=4, num_workers=0, pin_memory=False))
    workers = list(frame_loader(chunks, height=8, width=4, num_workers=2, pin_memory=False))
    assert [c.index for c in workers] == [0, 1]
    for a, b in zip(main, workers):
        assert torch.equal(a.images, b.images)


def test_normalize_frames_imagenet_mean_std():
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    images[0, 0] = 255
    x = normalize_frames(images, device=torch.device("cpu"))
    assert x.dtype == torch.float32 and x.shape == (1, 3, 2, 2)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]))
    assert images[0, 0, 0, 0] == 255
