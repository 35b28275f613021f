"""Benchmark of mine-aux on a 20k-tracklet synthetic camera network simulated in memory (no images).

The network comes from the synthetic generator's own simulation (`stages.data.synth.world.simulate`: people
walking a camera graph with per-edge transit times); appearance features are an identity embedding
plus strong noise (a stand-in for a weak round-0 model), so mutual kNN is imperfect. Prints the time
of TOC (sort-and-sweep, with the O(n^2) all-pairs test as baseline at a size it can do), of the STS
estimation (mutual kNN, histograms, model) and of the p lookup, plus the counts and the ROC AUC of
p for same-identity versus different-identity cross-camera pairs.

Run: .venv/bin/python benchmarks/mine_aux.py [--ids 3300] [--dim 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import group_pairs, mutual_knn_pairs, transit_from_pairs
from stages.auxinfo.toc import overlap_pairs, overlap_pairs_between, overlap_pairs_naive
from stages.auxinfo.transit import FALLBACK_OWN
from stages.config import AuxConfig
from stages.data.synth.world import FPS, GALLERY, QUERY, TRAIN, SynthSpec, simulate

NAIVE_SIZE = 5000


def _timed(func, *args, **kwargs):
    began = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - began


def _auc(model, camera, start, end, person, rng) -> float:
    """AUC over every same-id cross-camera pair and 2M random different-id cross-camera pairs."""
    positives = group_pairs(person)
    positives = positives[camera[positives[:, 0]] != camera[positives[:, 1]]]
    i, j = rng.integers(0, camera.size, (2, 2_000_000))
    keep = (camera[i] != camera[j]) & (person[i] != person[j])
    a = np.concatenate([positives[:, 0], i[keep]])
    b = np.concatenate([positives[:, 1], j[keep]])
    spans = Spans(camera, start, end)
    p = model.probability(spans.take(a), spans.take(b))
    return roc_auc_score(person[a] == person[b], p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=3300, help="train identities (3300 give about 20k tracklets)")
    parser.add_argument("--dim", type=int, default=64, help="feature dimension")
    parser.add_argument("--noise", type=float, default=1.0, help="feature noise relative to the id embedding")
    args = parser.parse_args()
    aux = AuxConfig()
    rng = np.random.default_rng(0)
    world, t_sim = _timed(simulate, SynthSpec(ids=args.ids, test_ids=max(10, args.ids // 3), distractors=0))
    t = world.tracklets
    split = {name: t.split == code for name, code in (("train", TRAIN), ("query", QUERY), ("gallery", GALLERY))}
    cam, start, end, person = (x[split["train"]] for x in (t.camera, t.start / FPS, t.end / FPS, t.person))
    n = cam.size
    embedding = rng.normal(size=(person.max() + 1, args.dim))
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    features = (embedding[person] + args.noise * rng.normal(size=(n, args.dim)) / np.sqrt(args.dim)).astype(np.float32)

    train_spans = Spans(cam, start, end)
    cannot_link, t_toc = _timed(overlap_pairs, train_spans)
    qg_args = [Spans(*(x[split[s]] for x in (t.camera, t.start / FPS, t.end / FPS))) for s in ("query", "gallery")]
    qg, t_qg = _timed(overlap_pairs_between, *qg_args)
    sub = np.arange(min(NAIVE_SIZE, cam.size))
    naive, t_naive = _timed(overlap_pairs_naive, train_spans.take(sub))
    fast_sub, t_fast_sub = _timed(overlap_pairs, train_spans.take(sub))
    assert np.array_equal(naive, fast_sub)
    assert (person[cannot_link[:, 0]] != person[cannot_link[:, 1]]).all()

    pairs, t_knn = _timed(mutual_knn_pairs, features, cam, k=aux.sts_mutual_k)
    settings = dict(num_cameras=world.spec.cams, bin_seconds=aux.sts_bin_seconds, max_gap_seconds=aux.sts_max_gap_seconds,
                    sigma_bins=aux.sts_smooth_sigma_bins, min_pairs=aux.sts_min_pairs)
    model, t_model = _timed(transit_from_pairs, pairs, train_spans, source="appearance", **settings)
    oracle = transit_from_pairs(group_pairs(person), train_spans, source="oracle", **settings)
    m = 10_000_000
    i, j = rng.integers(0, n, (2, m))
    _, t_lookup = _timed(model.probability, train_spans.take(i), train_spans.take(j))

    cross = cam[pairs[:, 0]] != cam[pairs[:, 1]]
    precision = (person[pairs[:, 0]] == person[pairs[:, 1]])[cross].mean()
    peaks = model.peak_seconds()
    errors = [abs(peaks[x, y] - mean) for (a, b), mean in zip(world.graph.edges, world.graph.mean_s) for x, y in ((a, b), (b, a))]

    print(f"synthetic network: {n:,} train tracklets, {world.spec.cams} cameras, {args.ids:,} train ids, "
          f"features {args.dim}-d, simulated in {t_sim:.2f} s")
    print(f"\n{'step':<44}{'size':>14}{'seconds':>10}{'ratio':>9}")
    rows = [
        ("TOC naive all-pairs (baseline)", f"n={NAIVE_SIZE:,}", t_naive, 1.0),
        ("TOC sort-and-sweep", f"n={NAIVE_SIZE:,}", t_fast_sub, t_naive / t_fast_sub),
        ("TOC sort-and-sweep, train", f"n={n:,}", t_toc, None),
        ("TOC query x gallery overlap", f"{split['query'].sum():,}x{split['gallery'].sum():,}", t_qg, None),
        (f"STS mutual kNN (k={aux.sts_mutual_k}, both searches)", f"n={n:,}", t_knn, None),
        ("STS histograms + smoothing + model", f"{len(pairs):,} pairs", t_model, None),
        ("STS p lookup", f"{m:,} pairs", t_lookup, None),
    ]
    for name, size, seconds, ratio in rows:
        print(f"{name:<44}{size:>14}{seconds:>10.3f}{'' if ratio is None else f'{ratio:>8.0f}x':>9}")
    print(f"\ncannot-link pairs (train): {len(cannot_link):,} (all join different ids; equal to all-pairs on n={NAIVE_SIZE:,})")
    print(f"query x gallery overlap pairs: {len(qg):,}")
    print(f"confident pairs: {len(pairs):,} ({cross.sum():,} cross-camera, precision {precision:.3f})")
    print(f"camera pairs with their own model: {(model.fallback == FALLBACK_OWN).sum()} of {model.fallback.size}")
    print(f"transit peak error on the {len(errors)} graph edges: max {max(errors):.2f} s, mean {np.mean(errors):.2f} s "
          f"(bin {aux.sts_bin_seconds:g} s)")
    print(f"ROC AUC of p, same vs different id cross-camera pairs: appearance {_auc(model, cam, start, end, person, rng):.3f}, "
          f"oracle {_auc(oracle, cam, start, end, person, rng):.3f}")


if __name__ == "__main__":
    main()
