"""The artifact schemas, in one place so every stage validates the files it reads the same way.

Per-split datasets live in groups named after the split (`train/`, `query/`, `gallery/`); each
consumer checks the groups it needs. The README documents every dataset, shape and dtype.
"""

from stages.artifacts.h5 import Schema

#: mine-aux output: per-tracklet cameras and spans, TOC pairs, STS transit-time model.
AUX = Schema("aux", 1, ("train/camera",))

#: extract output: features per split group (`<split>/features`, `<split>/tracklet_index`, ...).
FEATURES = Schema("features", 1, ())

#: cluster output: pseudo labels, eps, centroids, RLSCE neighbour map, stats.
CLUSTERS = Schema("clusters", 1, ("labels", "centroids", "nearest_clusters"))

#: evaluate output: query/gallery features, top-k ranks, per-query AP, metrics.
EVAL = Schema(
    "eval", 1,
    ("metrics/mAP", "metrics/cmc", "metrics/mINP", "ap", "topk_index", "topk_distance", "query/features",
     "gallery/features"),
)

#: Per-split columns every features group carries.
#: Test-time terms whose on/off state eval.h5 records as attributes.
EVAL_SWITCHES = ("toc", "scp", "sts", "rerank")

FEATURE_COLUMNS = ("features", "tracklet_index", "camera", "person_id", "num_frames")
