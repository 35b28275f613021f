"""What a new user meets first: start-up cost, --version, dataset homes, default outputs, paths from another
directory, progress lines and the run log under a scheduler, allowed values in --help, benchmarks' --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auxreid_cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_cli_loads_no_heavy_library() -> None:
    """Every command, even --help, imports auxreid_cli.main: it must not pay for torch or the numeric stacks."""
    heavy = ("torch", "torchvision", "numba", "faiss", "sklearn", "scipy", "h5py", "matplotlib", "PIL")
    code = f"import sys, auxreid_cli.main; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_model_code_does_not_import_torchvision() -> None:
    """torchvision's package import pulls in torch._dynamo (seconds per process); the network is built without it."""
    code = ("import sys; from stages.model.network import build_model; from stages.model.pretrained import initial_model; "
            "from stages.model.checkpoint import read_model_file; print('torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"auxreid {version('auxreid')}\n")
