"""The artifact schemas, in one place so every stage validates the files it reads the same way.

Per-split datasets live in groups named after the split (`train/`, `query/`, `gallery/`); each
consumer checks the groups it needs. docs/artifacts.md documents every dataset, shape and dtype.
"""

from stages.artifacts.h5 import Column, Schema

_INT1 = Column("iu", 1)
_INT2 = Column("iu", 2)
_FEATURES = Column("f", 2, finite=True)
_TEXT1 = Column("T", 1)
#: Per-split columns (features.h5 and eval.h5 groups), each split's rows in one order.
_SPLIT_COLUMNS = (
    ("*/features", _FEATURES), ("*/tracklet_index", _INT1), ("*/camera", _INT1), ("*/person_id", _INT1),
    ("*/num_frames", _INT1), ("*/frames_used", _INT1), ("*/sampled_frames", _INT2), ("*/bad_frames", Column("T", 1)),
    ("*/tracklet_name", _TEXT1), ("*/frame_offsets", _INT1), ("*/frame_paths", _TEXT1),
)

#: mine-aux output: per-tracklet cameras and spans, TOC pairs, STS transit-time model.
AUX = Schema(
    "aux", 1, ("train/camera",),
    columns=(("*/camera", _INT1), ("*/start", Column("f", 1, finite=True)), ("*/end", Column("f", 1, finite=True)),
             ("toc/*", _INT2), ("sts/density", Column("f", 3, finite=True)), ("sts/counts", Column("iu", 3)),
             ("sts/edges", Column("f", 1, finite=True)), ("sts/fallback", _INT2), ("sts/support", _INT2),
             ("sts/min_pairs", Column("iu", 0)), ("sts/sigma_bins", Column("f", 0, finite=True))),
    writer="mine-aux",
)

#: extract output: features per split group (`<split>/features`, `<split>/tracklet_index`, ...). Tracklet names
#: and frame paths (`<split>/tracklet_name`, `frame_offsets`, `frame_paths`, root attribute `data_root`) were
#: added within version 1: files written before lack them, and readers that need them say so.
FEATURES = Schema("features", 1, (), columns=_SPLIT_COLUMNS, writer="extract")

#: cluster output: pseudo labels, eps, centroids, RLSCE neighbour map, stats; the train tracklets' names and
#: frames copied from features.h5 when it has them (added within version 1, like features.h5's).
CLUSTERS = Schema(
    "clusters", 1, ("labels", "centroids", "nearest_clusters"),
    columns=(("labels", _INT1), ("centroids", _FEATURES), ("nearest_clusters", _INT2), ("sizes", _INT1),
             ("camera", _INT1), ("tracklet_index", _INT1), ("quality/*", Column("f", 0)),
             ("tracklet_name", _TEXT1), ("frame_offsets", _INT1), ("frame_paths", _TEXT1)),
    writer="cluster",
)

#: evaluate output: query/gallery features, top-k ranks, per-query AP, metrics.
EVAL = Schema(
    "eval", 1,
    ("metrics/mAP", "metrics/cmc", "metrics/mINP", "ap", "topk_index", "topk_distance", "query/features",
     "gallery/features"),
    columns=(*_SPLIT_COLUMNS, ("ap", Column("f", 1)), ("inp", Column("f", 1)), ("*/mAP", Column("f", 0)),
             ("*/mINP", Column("f", 0)), ("*/cmc", Column("f", 1)), ("topk_index", _INT2),
             ("topk_distance", Column("f", 2))),
    writer="evaluate",
)

#: Test-time terms whose on/off state eval.h5 records as attributes.
EVAL_SWITCHES = ("toc", "scp", "sts", "rerank")

#: Per-split columns every features group carries.
FEATURE_COLUMNS = ("features", "tracklet_index", "camera", "person_id", "num_frames")
