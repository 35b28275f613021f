"""Every accelerator figure in one run: agreement with the CPU, extract and train-round throughput, faiss kNN,
the cluster stage, peak memory and the versions. Made to be run once on a GPU lent for minutes.

Sections (each a row of the printed table and an entry of the JSON written to --out):
- features: the same model and frames on the device and on the CPU in fp32: cosine of the per-frame test
  features (L2-normalised neck output), fp32 and bf16 on the device;
- extract: `extract_features` (decoding in loader workers, chunks, AMP, channels_last) in frames/s, fp32 and
  bf16 + channels_last, beside the bare forward of the same model on frames already on the device;
- train: `train_to_file` (loader, augmentation, student + teacher, four losses, Adam, EMA) in frames/s, fp32
  and bf16, beside the bare forward + backward + Adam step of the student, with the loader's wait share;
- knn: exact kNN with faiss on the device and on the CPU: identical neighbours, both timings;
- cluster: the cluster stage end to end (kNN, Jaccard, eps, DBSCAN, centroids, RLSCE map) on the device.
Peak memory is the GPU's (torch.cuda.max_memory_allocated) on CUDA, the process's peak RSS on the CPU.

    .venv/bin/python benchmarks/gpu_check.py --device cuda --out gpu_check.json     # ResNet-50 256x128, N 50,000
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick --out /tmp/check.json   # tiny sizes (the test suite)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.schemas import FEATURES
from stages.config import build_config
from stages.data import load_dataset
from stages.model.embed import extract_features
from stages.model.pretrained import initial_model
from stages.runtime import autocast, memory_format, resolve_device, synchronize
from stages.synth import run_synth

HERE = Path(__file__).resolve().parent
#: Sizes of the full run (one H100/H200 in under 8 minutes) and of --quick (the test suite, a CPU in seconds).
FULL = {"arch": "resnet50", "height": 256, "width": 128, "extract_frames": 4096, "batch": 64, "seq": 4, "iters": 30,
        "warmup": 5, "knn_n": 50_000, "knn_d": 2048, "cluster_n": 50_000, "cluster_d": 2048, "workers": 12}
QUICK = {"arch": "resnet18", "height": 32, "width": 16, "extract_frames": 48, "batch": 8, "seq": 2, "iters": 2,
         "warmup": 1, "knn_n": 400, "knn_d": 64, "cluster_n": 300, "cluster_d": 64, "workers": 0}


def _module(name: str):
    """A sibling benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _timed(device: torch.device, work) -> tuple[object, float]:
    synchronize(device)
    start = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - start


def _config(sizes: dict, root: str, device: torch.device, *, amp: str = "off"):
    return build_config(({
        "seed": 0,
        "data": {"dataset": "synth", "root": root, "dense_step": 0, "height": sizes["height"],
                 "width": sizes["width"], "num_workers": sizes["workers"]},
        "model": {"arch": sizes["arch"], "pretrained": "none", "last_stride": 1},
        "extract": {"device": str(device), "amp": amp, "channels_last": amp != "off", "infer_chunk": 64},
    }, "gpu check"))


def features_section(sizes: dict, device: torch.device) -> dict:
    """Per-frame test features on the device against the CPU's, fp32 and bf16."""
    config = _config(sizes, "", device)
    model = initial_model(config, num_classes=0).eval()
    frames = torch.randn(32, 3, sizes["height"], sizes["width"], generator=torch.Generator().manual_seed(0))

    def embed(network, images, dtype):
        with torch.inference_mode(), autocast(images.device, dtype):
            return F.normalize(network.forward_head(network.forward_features(images))[0].float(), dim=1).cpu()

    reference = embed(model, frames, None)
    on_device = model.to(device)
    row = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        row[f"cosine_{name}"] = float((embed(on_device, frames.to(device), dtype) * reference).sum(1).min())
    return row


def extract_section(sizes: dict, device: torch.device, root: str) -> dict:
    """extract_features in infer mode, fp32 and bf16 + channels_last, and the bare forward of the same model."""
    row = {}
    for amp in ("off", "bf16"):
        config = _config(sizes, root, device, amp=amp)
        dataset = _module("extract")._subset(load_dataset(config.data), sizes["extract_frames"])
        model = initial_model(config, num_classes=0)
        frames = sum(len(t.frames) for t in dataset.gallery)
        _reset_peak(device)
        _, seconds = _timed(device, partial(extract_features, config, dataset, "gallery", model, mode="infer",
                                            round=0, device=device))
        key = "fp32" if amp == "off" else "bf16_channels_last"
        row[f"{key}_frames_per_s"] = frames / seconds
        row[f"{key}_peak_mb"] = _peak_mb(device)
        row[f"{key}_bare_frames_per_s"] = _bare_forward(model, config, device, frames=frames, amp=amp)
    return row


def _bare_forward(model, config, device: torch.device, *, frames: int, amp: str) -> float:
    """Forward passes on a random batch already on the device: the model's own inference speed."""
    network = model.to(device, memory_format=memory_format(amp != "off")).eval()
    batch = torch.randn(64, 3, config.data.height, config.data.width, device=device)
    batch = batch.contiguous(memory_format=memory_format(amp != "off"))
    dtype = torch.bfloat16 if amp == "bf16" else None
    repeats = max(1, frames // 64)

    def work():
        with torch.inference_mode(), autocast(device, dtype):
            for _ in range(repeats):
                network.forward_head(network.forward_features(batch))

    work()  # warm-up: cuDNN picks its algorithms
    _, seconds = _timed(device, work)
    return repeats * 64 / seconds


def train_section(sizes: dict, device: torch.device, root: str) -> dict:
    """train_to_file against the bare student step, fp32 and bf16 (benchmarks/train.py's measurements)."""
    train = _module("train")
    row = {}
    for amp in ("off", "bf16"):
        args = argparse.Namespace(arch=sizes["arch"], size=f"{sizes['height']}x{sizes['width']}", batch=sizes["batch"],
                                  seq=sizes["seq"], iters=sizes["iters"], warmup=sizes["warmup"],
                                  workers=sizes["workers"], device=str(device), amp=amp)
        config = train._config(args, root)
        with tempfile.TemporaryDirectory() as tmp:
            dataset, clusters, previous, count = train._inputs(config, Path(tmp) / "run")
            _reset_peak(device)
            ours = train._ours(config, Path(tmp) / "run", dataset, clusters, previous, sizes["warmup"])
            record = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()][-1]
        key = "fp32" if amp == "off" else "bf16"
        row[f"{key}_frames_per_s"] = ours
        row[f"{key}_peak_mb"] = _peak_mb(device)
        row[f"{key}_loader_wait_share"] = record["loader_wait_share"]
        row[f"{key}_bare_frames_per_s"] = train._bare(config, count, device, sizes["iters"], sizes["warmup"])
    return row


def knn_section(sizes: dict, device: torch.device) -> dict:
    """Exact faiss kNN (k = 30) on the device and on the CPU: the same neighbours, and each one's time."""
    from stages.clustering.knn import faiss_gpu, knn_search

    points = _module("cluster").clustered_features(sizes["knn_n"], sizes["knn_d"])
    row = {"gpu_index": faiss_gpu(device) is not None}
    cpu, row["cpu_seconds"] = _timed(torch.device("cpu"), lambda: knn_search(points, k=30, backend="faiss"))
    if row["gpu_index"]:
        _reset_peak(device)
        gpu, row["gpu_seconds"] = _timed(device, lambda: knn_search(points, k=30, backend="faiss", device=device))
        row["identical_neighbours"] = float((gpu.indices == cpu.indices).mean())
        row["peak_mb"] = _peak_mb(device)
    return row


def cluster_section(sizes: dict, device: torch.device) -> dict:
    """The cluster stage end to end on N features (no auxiliary information), on the device."""
    from stages.cluster import cluster_to_file

    n = sizes["cluster_n"]
    points = _module("cluster").clustered_features(n, sizes["cluster_d"])
    config = build_config(({"cluster": {"toc": False, "scp": False, "sts": False, "device": str(device)}},
                           "gpu check"))
    with tempfile.TemporaryDirectory() as tmp:
        columns = {"features": points, "tracklet_index": np.arange(n), "camera": np.arange(n) % 8,
                   "person_id": np.full(n, -1), "num_frames": np.full(n, 32)}
        features = write_artifact(Path(tmp) / "features.h5",
                                  make_provenance(FEATURES, dataset="check", fingerprint="check", round=1,
                                                  config=config),
                                  {f"train/{key}": value for key, value in columns.items()},
                                  attrs={"mode": "cluster", "bad_frames_skipped": 0})
        _reset_peak(device)
        _, seconds = _timed(device, lambda: cluster_to_file(config, features_path=features, aux_path=None,
                                                         out_path=Path(tmp) / "clusters.h5", round=1))
    return {"n": n, "seconds": seconds, "peak_mb": _peak_mb(device)}


def versions(device: torch.device) -> dict:
    import faiss

    found = {"torch": torch.__version__, "cuda": torch.version.cuda, "faiss": faiss.__version__,
             "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        found["device_name"] = torch.cuda.get_device_name(device)
        found["driver"] = _driver()
    else:
        found["device_name"] = platform.processor() or platform.machine()
    return found


def _driver() -> str:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"


def table(results: dict) -> list[str]:
    f, e, t, k, c = (results[key] for key in ("features", "extract", "train", "knn", "cluster"))
    lines = ["| check | fp32 | bf16 | against |", "|---|---|---|---|",
             f"| test features vs the CPU's, min cosine | {f['cosine_fp32']:.5f} | {f['cosine_bf16']:.5f} | >= 0.999 |"]
    for name, row, extra in (("extract", e, "bf16_channels_last"), ("train-round", t, "bf16")):
        bare = [row[f"{key}_bare_frames_per_s"] for key in ("fp32", extra)]
        ours = [row[f"{key}_frames_per_s"] for key in ("fp32", extra)]
        lines.append(f"| {name} frames/s (peak MB) | {ours[0]:,.0f} ({row['fp32_peak_mb']:,.0f}) | "
                     f"{ours[1]:,.0f} ({row[f'{extra}_peak_mb']:,.0f}) | bare {bare[0]:,.0f} / {bare[1]:,.0f}: "
                     f"ratio {ours[0] / bare[0]:.2f} / {ours[1] / bare[1]:.2f} |")
    lines.append(f"| train-round loader wait share | {t['fp32_loader_wait_share']:.2f} | {t['bf16_loader_wait_share']:.2f} "
                 "| |")
    gpu = (f"GPU {k['gpu_seconds']:.2f} s, identical neighbours {k['identical_neighbours']:.4f}" if k["gpu_index"]
           else "no faiss GPU index on this device")
    lines.append(f"| faiss exact kNN, k 30 | CPU {k['cpu_seconds']:.2f} s | {gpu} | |")
    lines.append(f"| cluster stage, N {c['n']:,} | {c['seconds']:.1f} s (peak MB {c['peak_mb']:,.0f}) | | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: every section in seconds, for the tests")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON file of every figure")
    parser.add_argument("--data", default="", help="a synthetic dataset at the check's frame size (default: make one)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or str(run_synth(Path(tmp) / "synth", seed=0, height=sizes["height"], width=sizes["width"],
                                          **({"ids": 8, "test_ids": 4, "distractors": 2} if args.quick else {})))
        results = {"versions": versions(device), "quick": args.quick, "sizes": sizes,
                   "features": features_section(sizes, device), "extract": extract_section(sizes, device, root),
                   "train": train_section(sizes, device, root), "knn": knn_section(sizes, device),
                   "cluster": cluster_section(sizes, device)}
    results["seconds"] = time.perf_counter() - started
    lines = table(results)
    info = results["versions"]
    print(f"gpu check on {info['device_name']} ({info['device']}), torch {info['torch']}, CUDA {info['cuda']}, "
          f"faiss {info['faiss']}{', driver ' + info['driver'] if 'driver' in info else ''}; "
          f"{'quick sizes' if args.quick else 'full sizes'}, {results['seconds']:.0f} s")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
