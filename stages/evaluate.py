"""evaluate: query x gallery retrieval with the test-time auxiliary information, to eval.h5 (+ its copy eval.json).

Teng et al. 2022 (arXiv 2205.03124): infer-mode teacher features (or saved ones), squared
Euclidean distance, then, each switchable in `evaluate.*`: + toc_penalty x TOC overlap, + scp_lambda
x same camera, x STS factor, optional k-reciprocal re-ranking; metrics of the market1501 protocol
(`stages.retrieval.metrics`). The same features always give the same numbers: nothing is sampled at test time.
In a run, the extracted features are kept in the round's test_features.h5 (`stages.eval_features`), so a
changed test-time setting or aux.h5 only re-ranks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.artifacts.h5 import Artifact, atomic_path, file_sha256, make_provenance, read_artifact, write_artifact
from stages.artifacts.lock import writes
from stages.artifacts.readers import read_features
from stages.artifacts.schemas import EVAL, EVAL_SWITCHES, FEATURE_COLUMNS
from stages.auxinfo.aux_file import missing_aux_message, read_aux
from stages.auxinfo.transit import sts_factor
from stages.config import Config, EvaluateConfig
from stages.errors import AuxReidError
from stages.eval_features import (
    EVAL_SPLITS,
    extract_query_gallery,
    require_features_of,
    round_test_features,
    run_test_features,
)
from stages.progress import NullProgress, Progress
from stages.retrieval.distance import add_camera_penalty, add_overlap_penalty, scale_by_factor, squared_distances
from stages.retrieval.metrics import RankingResult, evaluate_ranking, top_k_gallery
from stages.retrieval.rerank import rerank_features
from stages.rundir import StageIO

#: The `evaluate.*` switches recorded in eval.h5 / eval.json.

#: STS probabilities are computed for this many query rows at a time.
STS_ROW_BLOCK = 256


@dataclass(frozen=True)
class AuxTerms:
    """The auxiliary information at test time, in feature-row coordinates.

    Attributes:
        overlap_pairs: (p, 2) (query row, gallery row) pairs overlapping in time in the same camera, or None.
        sts_factor: (n_query, n_gallery) STS factors >= 1, or None.
    """

    overlap_pairs: np.ndarray | None = None
    sts_factor: np.ndarray | None = None


@dataclass(frozen=True)
class Evaluation:
    """Result of one evaluation: the final distances' metrics and top-k lists, the plain distance's metrics.

    Attributes:
        topk_index: (n_query, k) nearest gallery rows under the final distance, ties by index.
        topk_distance: (n_query, k) their distances.
    """

    result: RankingResult
    plain: RankingResult
    adjusted: bool
    topk_index: np.ndarray
    topk_distance: np.ndarray


def _known_query_ids(query_ids: np.ndarray, gallery_ids: np.ndarray) -> np.ndarray:
    """Query ids where unknown (-1) become distinct values no gallery item has: such queries are skipped."""
    unknown = query_ids < 0
    if not unknown.any():
        return query_ids
    floor = min(int(gallery_ids.min()), 0) - 1
    return np.where(unknown, floor - np.cumsum(unknown), query_ids)


def final_distance(
    query: dict[str, np.ndarray],
    gallery: dict[str, np.ndarray],
    settings: EvaluateConfig,
    *,
    aux: AuxTerms,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """Squared Euclidean distance with the switched-on TOC, SCP and STS terms, in the paper's order (overlap, camera, transit factor).

    Args:
        query: query columns (`features` (n_query, d), `camera` (n_query,)).
        gallery: gallery columns.
        settings: the `evaluate` config section (switches and weights).
        aux: test-time auxiliary terms; those switched on must be present.
        base: (n_query, n_gallery) squared Euclidean distances when already computed (not modified).

    Returns:
        (n_query, n_gallery) float32.
    """
    if (settings.toc and aux.overlap_pairs is None) or (settings.sts and aux.sts_factor is None):
        raise ValueError("evaluate.toc / evaluate.sts are on but their auxiliary terms were not given")
    dist = squared_distances(query["features"], gallery["features"]) if base is None else base
    if settings.toc:
        dist = add_overlap_penalty(dist, aux.overlap_pairs, penalty=settings.toc_penalty)
    if settings.scp:
        dist = add_camera_penalty(dist, query["camera"], gallery["camera"], lam=settings.scp_lambda)
    if settings.sts:
        dist = scale_by_factor(dist, aux.sts_factor)
    if settings.rerank:
        dist = rerank_features(
            query["features"], gallery["features"], q_g=dist,
            k1=settings.rerank_k1, k2=settings.rerank_k2, lam=settings.rerank_lambda,
        )
    return dist


def evaluate_features(
    query: dict[str, np.ndarray],
    gallery: dict[str, np.ndarray],
    settings: EvaluateConfig,
    *,
    aux: AuxTerms | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Metrics of the final distance and of the plain squared Euclidean distance.

    Args:
        query, gallery: validated feature columns (see `check_split_columns`).
        settings: the `evaluate` config section.
        aux: test-time auxiliary terms (required for the switched-on TOC / STS).
        progress: receives tasks "distance" and "metrics".

    Returns:
        Evaluation; `plain` is `result` when nothing was switched on.
    """
    progress = progress or NullProgress()
    aux = aux or AuxTerms()
    query_ids = _known_query_ids(query["person_id"], gallery["person_id"])
    labels = (query_ids, gallery["person_id"], query["camera"], gallery["camera"])
    progress.start("distance", total=None)
    base = squared_distances(query["features"], gallery["features"])
    dist = final_distance(query, gallery, settings, aux=aux, base=base)
    progress.done("distance", f"{dist.shape[0]} x {dist.shape[1]}")
    progress.start("metrics", total=None)
    result = evaluate_ranking(dist, *labels)
    topk_index, topk_distance = top_k_gallery(dist, k=settings.top_k)
    adjusted = settings.toc or settings.scp or settings.sts or settings.rerank
    plain = evaluate_ranking(base, *labels) if adjusted else result
    progress.done("metrics", f"mAP {result.mAP:.4f}")
    return Evaluation(result=result, plain=plain, adjusted=adjusted, topk_index=topk_index,
                      topk_distance=topk_distance)


def aux_terms(
    aux_path: Path | None, settings: EvaluateConfig, query: dict, gallery: dict, *, fingerprint: str,
    progress: Progress | None = None,
) -> AuxTerms:
    """Load aux.h5 and map its TOC pairs and STS probabilities onto the feature rows.

    Raises:
        AuxReidError: TOC or STS switched on without an aux.h5, or one the dataset cannot provide.
    """
    if not (settings.toc or settings.sts):
        return AuxTerms()
    _require_aux(aux_path, settings)
    info = read_aux(aux_path, fingerprint=fingerprint, progress=progress)
    q_index, g_index = query["tracklet_index"], gallery["tracklet_index"]
    pairs = None
    if settings.toc:
        raw = info.query_gallery_overlap
        q_row = _row_of(q_index, len(info.camera("query")))
        g_row = _row_of(g_index, len(info.camera("gallery")))
        mapped = np.stack([q_row[raw[:, 0]], g_row[raw[:, 1]]], axis=1) if len(raw) else np.zeros((0, 2), np.int64)
        pairs = mapped[(mapped >= 0).all(axis=1)]
    factor = None
    if settings.sts:
        factor = np.empty((len(q_index), len(g_index)), dtype=np.float64)
        for lo in range(0, len(q_index), STS_ROW_BLOCK):
            rows = q_index[lo : lo + STS_ROW_BLOCK]
            p = info.sts_probability(
                "query", np.repeat(rows, len(g_index)), "gallery", np.tile(g_index, len(rows)), option="evaluate.sts"
            )
            factor[lo : lo + len(rows)] = sts_factor(p, settings.sts_lambda, settings.sts_gamma).reshape(len(rows), -1)
    return AuxTerms(overlap_pairs=pairs, sts_factor=factor)


def _require_aux(aux_path: Path | None, settings: EvaluateConfig) -> None:
    """Fail before any work when TOC or STS is switched on but there is no aux.h5."""
    needs = [key for key, on in (("evaluate.toc", settings.toc), ("evaluate.sts", settings.sts)) if on]
    if needs and (aux_path is None or not Path(aux_path).is_file()):
        raise AuxReidError(missing_aux_message(needs, path=aux_path))


def _row_of(tracklet_index: np.ndarray, n: int) -> np.ndarray:
    """Inverse of a features group's tracklet_index: dataset index -> row, -1 when not present."""
    if len(tracklet_index) and (tracklet_index.min() < 0 or tracklet_index.max() >= n):
        raise AuxReidError(
            f"feature rows point at tracklet {int(tracklet_index.max())} but aux.h5 has {n} such tracklets; "
            "the features and aux.h5 come from different datasets"
        )
    rows = np.full(n, -1, dtype=np.int64)
    rows[tracklet_index] = np.arange(len(tracklet_index))
    return rows


def _load_saved(features_path: Path, round: int | None, progress: Progress) -> tuple[Artifact, dict, dict]:
    """Query and gallery columns of a features.h5 or eval.h5, validated by `read_features`."""
    saved = read_features(features_path, round=round, split=EVAL_SPLITS, mode=None, accept_eval=True,
                          progress=progress)
    return saved.artifact, saved["query"], saved["gallery"]


def metrics_record(mAP: float, mINP: float, cmc: np.ndarray, num_valid: int, num_skipped: int) -> dict:
    """JSON-ready retrieval numbers."""
    cmc = [float(v) for v in np.asarray(cmc)]
    return {
        "mAP": float(mAP),
        "mINP": float(mINP),
        "rank1": cmc[0] if cmc else None,
        "rank5": cmc[4] if len(cmc) > 4 else None,
        "rank10": cmc[9] if len(cmc) > 9 else None,
        "rank20": cmc[19] if len(cmc) > 19 else None,
        "cmc": cmc,
        "num_valid_queries": int(num_valid),
        "num_skipped_queries": int(num_skipped),
    }


def eval_record(artifact: Artifact) -> dict:
    """eval.json's content: eval.h5's numbers, plus the SHA-256 of the eval.h5 they were read from.

    eval.h5 is the one source of an evaluation's numbers; eval.json is a readable copy for scripts and
    people. Deriving it from the file just written keeps the two from disagreeing, and the recorded
    hash tells a copy that a later, failed write left stale.
    """
    attrs = artifact.attrs
    counts = (int(attrs["num_valid_queries"]), int(attrs["num_skipped_queries"]))
    numbers = {prefix: metrics_record(artifact[f"{prefix}/mAP"], artifact[f"{prefix}/mINP"], artifact[f"{prefix}/cmc"],
                                      *counts) for prefix in ("metrics", "plain")}
    return {"round": artifact.provenance.round, "dataset": artifact.provenance.dataset, **numbers["metrics"],
            "test_time_aux": {k: bool(attrs[k]) for k in EVAL_SWITCHES}, "plain": numbers["plain"],
            "seconds": float(attrs["seconds"]), "eval_h5": artifact.path.name,
            "eval_h5_sha256": file_sha256(artifact.path)}


def write_eval_json(eval_h5: str | Path) -> Path:
    """Write eval.json beside `eval_h5` from its content; on failure no eval.json is left to contradict eval.h5.

    Raises:
        AuxReidError: the write failed (eval.h5 is written and stays the valid result).
    """
    eval_h5 = Path(eval_h5)
    json_path = eval_h5.with_suffix(".json")
    record = eval_record(read_artifact(eval_h5, EVAL))
    try:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
    except AuxReidError as exc:
        json_path.unlink(missing_ok=True)
        raise AuxReidError(f"{exc}; {eval_h5} was written and holds the numbers, {json_path} is only their copy, "
                           "removed until `auxreid evaluate` runs again") from None
    return json_path


@writes(lambda out_path, test_features_path=None, **_: (out_path, Path(out_path).with_suffix(".json"),
                                                         test_features_path))
def evaluate_to_file(
    config: Config,
    *,
    features_path: str | Path | None = None,
    model_path: str | Path | None = None,
    aux_path: str | Path | None = None,
    out_path: str | Path,
    round: int | None = None,
    test_features_path: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Evaluate saved features (or extract them with a model's teacher) and write eval.h5 + eval.json.

    Args:
        config: the run's config; `evaluate.*` switches the test-time terms, `data`/`extract` are
            used only when extracting.
        features_path: a features.h5 or eval.h5 with query/ and gallery/ groups; no model or images needed.
            With model_path too, they must be that model's features (checked by its SHA-256).
        model_path: a model.pt whose teacher extracts infer-mode features (when no features_path).
        aux_path: aux.h5 for TOC / STS.
        out_path: eval.h5 to write; eval.json is written beside it.
        round: round recorded (and checked against saved features); default the source's round.
        test_features_path: with model_path and round: the round's test_features.h5, reused when it holds
            this model's features under the config's extract settings, else extracted and written there.
        progress: progress sink.

    Returns:
        out_path.
    """
    began = time.perf_counter()
    progress = progress or NullProgress()
    settings = config.evaluate
    _require_aux(Path(aux_path) if aux_path else None, settings)
    parents: dict[str, Path] = {}
    if features_path is not None:
        if model_path is not None:
            require_features_of(Path(features_path), Path(model_path))
        artifact, query, gallery = _load_saved(Path(features_path), round, progress)
        dataset, fingerprint = artifact.provenance.dataset, artifact.provenance.fingerprint
        round = artifact.provenance.round if round is None else round
        parents["features"] = Path(features_path)
        if artifact.attrs.get("mode") == "cluster":
            progress.warn(f"{features_path} holds cluster-mode features (a sampled run of frames); the paper "
                          "evaluates infer-mode features of every frame (`auxreid extract --mode infer`)")
    elif model_path is not None:
        if test_features_path is not None:
            if round is None:
                raise ValueError("test_features_path needs the round its features are kept for")
            found = round_test_features(config, model_path=Path(model_path), cache_path=Path(test_features_path),
                                        round=round, progress=progress)
            parents["test_features"] = Path(test_features_path)
        else:
            found = extract_query_gallery(config, Path(model_path), round=round, progress=progress)
        dataset, fingerprint, round, query, gallery = (found.dataset, found.fingerprint, found.round, found.query,
                                                       found.gallery)
        parents["model"] = Path(model_path)
    else:
        raise AuxReidError("evaluate needs --features F.h5 or a model (--model M.pt or the round's model.pt)")
    aux = aux_terms(Path(aux_path) if aux_path else None, settings, query, gallery, fingerprint=fingerprint,
                    progress=progress)
    if settings.toc or settings.sts:
        parents["aux"] = Path(aux_path)
    evaluation = evaluate_features(query, gallery, settings, aux=aux, progress=progress)
    result = evaluation.result
    groups = (("query", query), ("gallery", gallery))
    data = {f"{split}/{c}": cols[c] for split, cols in groups for c in FEATURE_COLUMNS}
    data.update({
        "topk_index": evaluation.topk_index,
        "topk_distance": evaluation.topk_distance.astype(np.float32),
        "ap": result.ap,
        "inp": result.inp,
        "metrics/mAP": np.float64(result.mAP),
        "metrics/cmc": result.cmc,
        "metrics/mINP": np.float64(result.mINP),
        "plain/mAP": np.float64(evaluation.plain.mAP),
        "plain/cmc": evaluation.plain.cmc,
        "plain/mINP": np.float64(evaluation.plain.mINP),
    })
    switches = {k: bool(getattr(settings, k)) for k in EVAL_SWITCHES}
    attrs = {**switches, "num_valid_queries": result.num_valid, "num_skipped_queries": result.num_skipped,
             "distance": "squared_euclidean", "source": "features" if features_path is not None else "model",
             "seconds": time.perf_counter() - began}
    provenance = make_provenance(EVAL, dataset=dataset, fingerprint=fingerprint, round=round, config=config,
                                 parents=parents)
    out_path = write_artifact(out_path, provenance, data, attrs=attrs)
    write_eval_json(out_path)
    if result.num_skipped:
        progress.warn(f"{result.num_skipped} of {len(result.ap)} queries have no valid gallery match and were skipped")
    return out_path


def run_evaluate(config: Config, io: StageIO, *, progress: Progress | None = None) -> list[Path]:
    """`auxreid evaluate`: eval.h5 and eval.json; with the extract_only option, only the round's test features.

    Returns the files written: none when extract_only found test_features.h5 up to date.
    """
    if io.options.get("extract_only"):
        found = run_test_features(config, model_path=io.inputs["model"], out_path=io.outputs["test_features"],
                                  round=io.round, progress=progress)
        return [] if found.reused else [found.path]
    written = evaluate_to_file(config, features_path=io.input("features"), model_path=io.input("model"),
                               aux_path=io.input("aux"), out_path=io.outputs["eval"], round=io.round,
                               test_features_path=io.outputs.get("test_features"), progress=progress)
    return [written, written.with_suffix(".json")]
