"""Shared test fixtures: the reference vectors and an isolated artifacts root."""

import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="session")
def reference():
    """Vectors produced by the original implementation."""
    with np.load(DATA / "seed_reference_600.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(autouse=True)
def _artifacts_root(tmp_path, monkeypatch):
    """Keep every test's run directories out of the checkout's artifacts/."""
    monkeypatch.setenv("AUXREID_ARTIFACTS", str(tmp_path / "artifacts"))


class ModuleTempFactory:
    """`tmp_path_factory.mktemp` for one module's shared fixtures, whose folders go when the module ends.

    pytest keeps every factory folder until the session ends; a module's trained runs weigh hundreds of MB, so
    keeping all of them asks for gigabytes of free disk.
    """

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory = factory
        self.made: list[Path] = []

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        path = self.factory.mktemp(basename, numbered=numbered)
        self.made.append(path)
        return path

    def remove(self) -> None:
        for path in self.made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    """Folders for a module's shared fixtures, removed when the module's tests are done."""
    factory = ModuleTempFactory(tmp_path_factory)
    yield factory
    factory.remove()


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A small synthetic camera network in the Duke layout, generated once per test session."""
    from stages.synth import run_synth

    return run_synth(tmp_path_factory.mktemp("tiny_synth") / "synth", layout="duke", seed=0, ids=12, test_ids=6,
                     distractors=3, cams=4, min_frames=2, max_frames=4)
