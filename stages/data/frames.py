"""Frame decoding and the DataLoader that feeds extraction: resize, ImageNet normalisation, bad files.

Workers decode each needed frame once (PIL, bicubic resize to height x width, as torchvision's Resize
does on PIL images) and ship uint8 tensors; normalisation with the ImageNet mean/std happens on the
compute device, which keeps the pinned host->GPU copies four times smaller than float32. A frame that
cannot be decoded is reported back with its reason instead of raising inside a worker, so the caller
decides between a one-line error naming the file and skipping it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from stages.errors import AuxReidError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: What PIL raises for missing, unidentifiable, truncated or corrupt images.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def read_frame(path: str, *, height: int, width: int) -> np.ndarray:
    """Decode one image as RGB and resize it (bicubic).

    Returns:
        (height, width, 3) uint8.

    Raises:
        AuxReidError: naming the file and what is wrong with it.
    """
    try:
        return _decode(path, height=height, width=width)
    except DECODE_ERRORS as exc:
        raise AuxReidError(f"cannot read frame {path}: {_reason(exc)}") from None


def _decode(path: str, *, height: int, width: int) -> np.ndarray:
    with open_regular(path) as handle, Image.open(handle) as image:
        rgb = image.convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.BICUBIC)
        return np.array(rgb, dtype=np.uint8)


def open_regular(path: str | os.PathLike):
    """Open a file for reading only if it is a regular file: a named pipe among the frames would block the
    reader forever, a device would read without end; neither is waited on.

    Raises:
        OSError: the file is missing or unreadable.
        ValueError: it is not a regular file (the caller names it).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a named pipe" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a special file"
            raise ValueError(f"it is {kind}, not an image file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class DecodedChunk:
    """One DataLoader item: the decoded frames of a chunk and which of them failed.

    Attributes:
        index: position of the chunk in the loader's chunk list.
        images: (n_frames, 3, height, width) uint8; failed frames are zeros.
        ok: (n_frames,) bool.
        errors: (frame position, reason) of each failed frame.
    """

    index: int
    images: torch.Tensor
    ok: torch.Tensor
    errors: tuple[tuple[int, str], ...]

    def pin_memory(self) -> "DecodedChunk":
        """Called by DataLoader(pin_memory=True) so the copy to the GPU can be asynchronous."""
        return DecodedChunk(self.index, self.images.pin_memory(), self.ok.pin_memory(), self.errors)


class FrameChunks(Dataset):
    """Decodes chunks of frame paths; item i is a DecodedChunk of `chunks[i]`.

    Args:
        chunks: per chunk, the frame paths to decode (each path once per chunk).
        height, width: output size.
    """

    def __init__(self, chunks: Sequence[Sequence[str]], *, height: int, width: int) -> None:
        self.chunks = [tuple(c) for c in chunks]
        self.height, self.width = height, width

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> DecodedChunk:
        paths = self.chunks[index]
        images = np.zeros((len(paths), self.height, self.width, 3), dtype=np.uint8)
        ok = np.ones(len(paths), dtype=bool)
        errors = []
        for position, path in enumerate(paths):
            try:
                images[position] = _decode(path, height=self.height, width=self.width)
            except DECODE_ERRORS as exc:
                ok[position] = False
                errors.append((position, _reason(exc)))
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return DecodedChunk(index, tensor, torch.from_numpy(ok), tuple(errors))


def frame_loader(
    chunks: Sequence[Sequence[str]], *, height: int, width: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    """A loader yielding one DecodedChunk per chunk, in order, decoded by `num_workers` processes."""
    return DataLoader(
        FrameChunks(chunks, height=height, width=width),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def normalize_frames(
    images: torch.Tensor, *, device: torch.device, channels_last: bool = False
) -> torch.Tensor:
    """uint8 frames -> float32 model input on `device`, ImageNet mean/std.

    Args:
        images: (n, 3, height, width) uint8.

    Returns:
        (n, 3, height, width) float32 on `device` (channels_last memory format when asked).
    """
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    x = images.to(device, non_blocking=True).float().div_(255.0).sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
