"""benchmarks/gpu_check.py runs on the CPU with tiny sizes, so the script a GPU run depends on cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_quick_on_the_cpu_fills_every_section(tmp_path):
    out = tmp_path / "check.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    found = json.loads(out.read_text())
    assert found["quick"] is True and found["versions"]["device"] == "cpu" and found["versions"]["torch"]
    assert found["features"]["cosine_fp32"] >= 0.99999 and found["features"]["cosine_bf16"] >= 0.999
    for section, extra in (("extract", "bf16_channels_last"), ("train", "bf16")):
        for key in ("fp32", extra):
            row = found[section]
            assert row[f"{key}_frames_per_s"] > 0 and row[f"{key}_bare_frames_per_s"] > 0 and row[f"{key}_peak_mb"] > 0
    assert all(0.0 <= found["train"][f"{key}_loader_wait_share"] < 1.0 for key in ("fp32", "bf16"))
    assert found["knn"]["gpu_index"] is False and found["knn"]["cpu_seconds"] > 0
    assert found["cluster"]["n"] == 300 and found["cluster"]["seconds"] > 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("gpu check on ") and "quick sizes" in lines[0]
    assert [line.split(" | ")[0] for line in lines[3:9]] == [
        "| test features vs the CPU's, min cosine", "| extract frames/s (peak MB)", "| train-round frames/s (peak MB)",
        "| train-round loader wait share", "| faiss exact kNN, k 30", "| cluster stage, N 300"]
    assert lines[-1] == f"wrote {out}"
