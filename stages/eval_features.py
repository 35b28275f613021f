"""The infer-mode query/gallery features that evaluate ranks, kept per round in test_features.h5 and reused.

Extracting every query and gallery frame is nearly all of an evaluation's time, while the test-time terms
(TOC, SCP, STS, re-ranking, the aux.h5 they read) only change the ranking. So a run's evaluate keeps round
R's features in `round_RRR/test_features.h5`: a features.h5 in infer mode with query/ and gallery/ groups
that records the SHA-256 of the model.pt they came from and the settings that shape them (`extract_key`).
A later evaluate reuses the file only when the run's dataset fingerprint, the round, the model's hash and
those settings all match; otherwise it extracts again and rewrites the file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.artifacts.h5 import file_sha256, make_provenance, read_provenance, write_artifact
from stages.artifacts.lock import writes
from stages.artifacts.readers import check_split_columns, read_features, read_model
from stages.artifacts.schemas import FEATURES
from stages.config import Config
from stages.data import load_dataset
from stages.errors import AuxReidError
from stages.model.checkpoint import build_network
from stages.model.embed import extract_features
from stages.progress import NullProgress, Progress
from stages.runtime import resolve_device

EVAL_SPLITS = ("query", "gallery")
#: The progress task that reports whether the test features were reused or extracted.
TASK = "test features"


@dataclass(frozen=True)
class QueryGallery:
    """Validated infer-mode query and gallery columns, and where they came from.

    Attributes:
        path: the test_features.h5 read or written, None when extracted without keeping them.
        reused: read from `path` instead of extracted.
    """

    dataset: str
    fingerprint: str
    round: int
    query: dict[str, np.ndarray]
    gallery: dict[str, np.ndarray]
    path: Path | None = None
    reused: bool = False


def extract_key(config: Config) -> dict[str, object]:
    """The settings besides the model and the dataset that shape infer-mode features, as test_features.h5 records them.

    AMP and channels_last act on every device; the chunk size and the loader workers change no number and are
    left out, so changing them reuses the file.
    """
    device = resolve_device(config.extract.device).type
    return {"data.height": config.data.height, "data.width": config.data.width, "extract.device": device,
            "extract.amp": config.extract.amp, "extract.channels_last": bool(config.extract.channels_last),
            "extract.skip_bad_frames": bool(config.extract.skip_bad_frames)}


def reuse_problem(path: Path, *, model_sha: str, key: dict[str, object], fingerprint: str, round: int) -> str | None:
    """Why the test features at `path` are not the ones asked for (None: they are), from its attributes only."""
    if not path.is_file():
        return "there are none yet"
    try:
        provenance, attrs = read_provenance(path)
    except AuxReidError as exc:
        return str(exc)
    if provenance.schema != FEATURES.name or attrs.get("mode") != "infer":
        return f"it holds '{provenance.schema}' ({attrs.get('mode', 'no')} mode), not infer-mode features"
    if provenance.fingerprint != fingerprint:
        return (f"it was made from dataset '{provenance.dataset}' with split fingerprint {provenance.fingerprint}, "
                f"not the run's {fingerprint}")
    if provenance.round != round:
        return f"it is from round {provenance.round}, not round {round}"
    recorded = provenance.parents.get("model", "")
    if recorded != model_sha:
        return f"it was extracted with another model.pt (SHA-256 {recorded[:12] or 'not recorded'}, now {model_sha[:12]})"
    try:
        found = json.loads(str(attrs.get("extract_key", "")))
    except ValueError:
        found = None
    if not isinstance(found, dict):
        return "it records no extract settings"
    changed = [f"{name} {found.get(name)!r} (now {value!r})" for name, value in key.items() if found.get(name) != value]
    return f"it was extracted with {', '.join(changed)}" if changed else None


def require_features_of(features_path: Path, model_path: Path) -> None:
    """Refuse features given with --features that the --model given beside them did not extract.

    Raises:
        AuxReidError: the features record another model's SHA-256, or none.
    """
    recorded = read_provenance(features_path)[0].parents.get("model", "")
    current = file_sha256(model_path)
    if recorded != current:
        made = (f"were extracted with a model of SHA-256 {recorded[:12]}, and {model_path} has {current[:12]}"
                if recorded else "record no model they were extracted with")
        raise AuxReidError(f"the features in {features_path} {made}; give the features that {model_path} extracted, "
                           "or leave out --features to extract them with it")


def extract_query_gallery(
    config: Config, model_path: Path, *, round: int | None, progress: Progress, dataset=None
) -> QueryGallery:
    """Infer-mode teacher features of query and gallery (every frame, nothing sampled)."""
    model_file = read_model(model_path, progress=progress)
    round = model_file.round if round is None else round
    dataset = dataset if dataset is not None else load_dataset(config.data)
    network = build_network(model_file, "teacher")
    device = resolve_device(config.extract.device)
    columns = [extract_features(config, dataset, split, network, mode="infer", round=round, device=device,
                                progress=progress) for split in EVAL_SPLITS]
    for split, cols in zip(EVAL_SPLITS, columns):
        check_split_columns(cols, split, f"the teacher of {model_path}")
    return QueryGallery(dataset.name, dataset.fingerprint, round, columns[0], columns[1])


def round_test_features(
    config: Config, *, model_path: Path, cache_path: Path, round: int, progress: Progress | None = None
) -> QueryGallery:
    """Round `round`'s features of `model_path`: read from `cache_path` when it holds exactly them, else
    extracted and written there (atomically; the caller holds the claim on `cache_path`).

    Raises:
        AuxReidError: the dataset cannot be loaded, a frame cannot be read, or the write fails.
    """
    progress = progress or NullProgress()
    began = time.perf_counter()
    progress.start(TASK, total=None)
    dataset = load_dataset(config.data)
    key = extract_key(config)
    provenance = make_provenance(FEATURES, dataset=dataset.name, fingerprint=dataset.fingerprint, round=round,
                                 config=config, parents={"model": model_path})
    problem = reuse_problem(cache_path, model_sha=provenance.parents["model"], key=key,
                            fingerprint=dataset.fingerprint, round=round)
    if problem is None:
        try:
            saved = read_features(cache_path, fingerprint=dataset.fingerprint, round=round, split=EVAL_SPLITS,
                                  mode="infer")
        except AuxReidError as exc:
            problem = str(exc)
        else:
            progress.done(TASK, f"reused {cache_path} (model SHA-256 {provenance.parents['model'][:12]})")
            return QueryGallery(dataset.name, dataset.fingerprint, round, saved["query"], saved["gallery"],
                                path=cache_path, reused=True)
    found = extract_query_gallery(config, model_path, round=round, progress=progress, dataset=dataset)
    data = {f"{split}/{name}": value for split, cols in zip(EVAL_SPLITS, (found.query, found.gallery))
            for name, value in cols.items()}
    data["camera_labels"] = np.array(dataset.camera_labels, dtype=str)
    attrs = {"mode": "infer", "extract_key": json.dumps(key, sort_keys=True), "model_round": round,
             "bad_frames_skipped": sum(len(cols["bad_frames"]) for cols in (found.query, found.gallery)),
             "device": key["extract.device"], "seconds": time.perf_counter() - began}
    existed = cache_path.is_file()
    write_artifact(cache_path, provenance, data, attrs=attrs)
    progress.done(TASK, f"extracted into {cache_path}" + (f"; the file there was not reusable: {problem}" if existed else ""))
    return QueryGallery(found.dataset, found.fingerprint, round, found.query, found.gallery, path=cache_path)


@writes(lambda out_path, **_: (out_path,))
def run_test_features(
    config: Config, *, model_path: str | Path, out_path: str | Path, round: int, progress: Progress | None = None
) -> QueryGallery:
    """`auxreid evaluate RUN --round R --extract-only`: bring round R's test_features.h5 up to date, rank nothing."""
    return round_test_features(config, model_path=Path(model_path), cache_path=Path(out_path), round=round,
                               progress=progress)
