"""The artifact schemas, in one place so every stage validates the files it reads the same way.

Per-split datasets live in groups named after the split (`train/`, `query/`, `gallery/`); each
consumer checks the groups it needs. Each column carries its shape and meaning beside its check, and
docs/artifacts.md's schema tables are generated from them (`python -m stages.artifacts.schema_doc`),
so the documentation cannot drift from what readers enforce. Which command writes each artifact is
here too (`writer_of`), for the messages that tell a person how to re-make a file, and which settings
decide what it holds (`settings_of`), for `status` and the stale-input warnings, which name an artifact
made with other settings than the run's config.yaml.
"""

from stages.artifacts.h5 import Column, Schema

#: Per-split columns (features.h5 and eval.h5 groups), each split's rows in one order. `extract` writes all of
#: them for every split; a features.h5 from elsewhere (evaluate's test_features.h5, another tool) needs only
#: FEATURE_COLUMNS, so the names and frames are optional and `export` looks them up in the dataset when absent.
SPLIT_COLUMNS = (
    ("*/features", Column("f", 2, finite=True, shape="(N, D) float32",
                          meaning="cluster mode: mean raw f; infer mode: mean of L2-normalised bn_f")),
    ("*/tracklet_index", Column("iu", 1, shape="(N,) int64", meaning="index into the dataset's split list")),
    ("*/camera", Column("iu", 1, shape="(N,) int64", meaning="0-based camera")),
    ("*/person_id", Column("iu", 1, shape="(N,) int64", meaning="−1 unknown (inspection only)")),
    ("*/num_frames", Column("iu", 1, shape="(N,) int64", meaning="frames in the tracklet")),
    ("*/frames_used", Column("iu", 1, shape="(N,) int64", meaning="frames averaged")),
    ("*/sampled_frames", Column("iu", 2, shape="(N, L) int64", meaning="cluster mode: the run's frame indices")),
    ("*/bad_frames", Column("T", 1, shape="(B,) str", meaning="skipped unreadable frames")),
    ("*/tracklet_name", Column("T", 1, shape="(N,) str",
                               meaning="the loader's tracklet name (e.g. `0001/0001C6T0003#2` for a Duke piece)")),
    ("*/frame_offsets", Column("iu", 1, shape="(N+1,) int64",
                               meaning="row i owns `frame_paths[offsets[i]:offsets[i+1]]`")),
    ("*/frame_paths", Column("T", 1, shape="(F,) str",
                             meaning="every frame, relative to `data_root`, in tracklet order")),
)

#: Each camera index's label, as the dataset names its cameras. Optional, so files written before it read as they
#: are (their cameras are shown by index); figures, pages and exports show the label wherever they show a camera.
CAMERA_LABELS = ("camera_labels", Column("T", 1, shape="(C,) str",
                                         meaning="label of camera 0..C−1: a manifest's camera values; C1, C2, ... "
                                                 "for Duke, MARS and the synthetic network (their file names' numbers)"))

#: mine-aux output: per-tracklet cameras and spans, TOC pairs, STS transit-time model.
AUX = Schema(
    "aux", 1, ("train/camera",),
    columns=(
        ("*/camera", Column("iu", 1, shape="(n,) int64", meaning="camera per tracklet")),
        ("*/start", Column("f", 1, finite=True, shape="(n,) float64",
                           meaning="span start in seconds, when the dataset has times")),
        ("*/end", Column("f", 1, finite=True, shape="(n,) float64",
                         meaning="span end in seconds, when the dataset has times")),
        ("toc/train_pairs", Column("iu", 2, shape="(M, 2) int64", meaning="cannot-link pairs, i < j")),
        ("toc/query_gallery_pairs", Column("iu", 2, shape="(P, 2) int64",
                                           meaning="overlapping (query, gallery) pairs")),
        ("sts/density", Column("f", 3, finite=True, shape="(C, C, B) float64",
                               meaning="p per ordered camera pair and bin")),
        ("sts/counts", Column("iu", 3, shape="(C, C, B) int64", meaning="raw gap counts")),
        ("sts/edges", Column("f", 1, finite=True, shape="(B+1,) float64", meaning="gap bin edges (seconds)")),
        ("sts/fallback", Column("iu", 2, shape="(C, C) int64", meaning="0 own model, 1 pooled, 2 no evidence")),
        ("sts/support", Column("iu", 2, shape="(C, C) int64", meaning="pairs used per camera pair")),
        ("sts/min_pairs", Column("iu", 0, shape="() int64",
                                 meaning="pairs a camera pair needs for its own model (`aux.sts_min_pairs`)")),
        ("sts/sigma_bins", Column("f", 0, finite=True, shape="() float64",
                                  meaning="smoothing sigma in bins (`aux.sts_smooth_sigma_bins`)")),
        CAMERA_LABELS,
    ),
    writer="mine-aux",
    settings=("aux",),
)

#: extract output: features per split group (`<split>/features`, `<split>/tracklet_index`, ...), with the
#: tracklets' names and frames (see SPLIT_COLUMNS for why readers do not insist on those).
FEATURES = Schema("features", 1, (), columns=(*SPLIT_COLUMNS, CAMERA_LABELS), writer="extract",
                  settings=("data", "model", "extract"))

#: cluster output: pseudo labels, eps, centroids, RLSCE neighbour map, stats; the train tracklets' names and
#: frames copied from features.h5 when it has them (so a features.h5 from another tool still clusters).
CLUSTERS = Schema(
    "clusters", 1, ("labels", "centroids", "nearest_clusters"),
    columns=(
        ("labels", Column("iu", 1, shape="(N,) int64", meaning="pseudo label per train tracklet, −1 noise")),
        ("centroids", Column("f", 2, finite=True, shape="(C, D) float32", meaning="mean member feature")),
        ("nearest_clusters", Column("iu", 2, shape="(C, K) int64",
                                    meaning="RLSCE map: each cluster's K nearest clusters (`cluster.rlsce_k`)")),
        ("sizes", Column("iu", 1, shape="(C,) int64", meaning="cluster sizes")),
        ("camera", Column("iu", 1, shape="(N,) int64", meaning="from features.h5")),
        ("tracklet_index", Column("iu", 1, shape="(N,) int64", meaning="from features.h5")),
        ("quality/*", Column("f", 0, shape="() float64",
                             meaning="purity, nmi, ari, pairwise_precision, pairwise_recall, nmi_all against the "
                                     "true ids, when every id is known")),
        ("tracklet_name", Column("T", 1, shape="(N,) str", meaning="from features.h5's train group, when it has them")),
        ("frame_offsets", Column("iu", 1, shape="(N+1,) int64",
                                 meaning="from features.h5's train group, when it has them")),
        ("frame_paths", Column("T", 1, shape="(F,) str", meaning="from features.h5's train group, when it has them")),
        ("camera_labels", Column("T", 1, shape="(C,) str", meaning="from features.h5, when it has them")),
    ),
    writer="cluster",
    # aux's STS keys: cluster.sts_reestimate re-estimates the STS model from the previous round's clusters with them
    settings=("cluster", "aux.sts_bin_seconds", "aux.sts_max_gap_seconds", "aux.sts_smooth_sigma_bins",
              "aux.sts_min_pairs"),
)

#: evaluate output: query/gallery features, top-k ranks, per-query AP, metrics.
EVAL = Schema(
    "eval", 1,
    ("metrics/mAP", "metrics/cmc", "metrics/mINP", "ap", "topk_index", "topk_distance", "query/features",
     "gallery/features"),
    columns=(
        *SPLIT_COLUMNS,
        ("ap", Column("f", 1, shape="(Q,) float64", meaning="average precision per query; NaN when skipped")),
        ("inp", Column("f", 1, shape="(Q,) float64", meaning="inverse negative penalty per query; NaN when skipped")),
        ("metrics/mAP", Column("f", 0, shape="() float64", meaning="mAP with the final distance")),
        ("metrics/cmc", Column("f", 1, shape="(20,) float64", meaning="CMC rank 1..20 with the final distance")),
        ("metrics/mINP", Column("f", 0, shape="() float64", meaning="mINP with the final distance")),
        ("plain/mAP", Column("f", 0, shape="() float64", meaning="mAP with the plain squared Euclidean distance")),
        ("plain/cmc", Column("f", 1, shape="(20,) float64", meaning="CMC with the plain squared Euclidean distance")),
        ("plain/mINP", Column("f", 0, shape="() float64", meaning="mINP with the plain squared Euclidean distance")),
        ("topk_index", Column("iu", 2, shape="(Q, K) int64",
                              meaning="ranked gallery rows per query (K = `evaluate.top_k`, 100)")),
        ("topk_distance", Column("f", 2, shape="(Q, K) float32", meaning="their distances")),
    ),
    writer="evaluate",
    # the data and extract keys: evaluate extracts the query/gallery features (test_features.h5) with them
    settings=("evaluate", "data.height", "data.width", "extract.amp", "extract.skip_bad_frames"),
)

#: Every HDF5 artifact schema, in the order docs/artifacts.md lists them.
SCHEMAS = (FEATURES, AUX, CLUSTERS, EVAL)

#: model.pt is no HDF5 schema, but stale warnings and `status` name the command that re-makes it too (round 0's
#: comes from `init`).
MODEL = "model"
MODEL_WRITER = "train-round"
#: model.pt's `format` and `version` entries (`stages.artifacts.model_file`).
MODEL_FORMAT = "auxreid-model"
MODEL_VERSION = 2
#: The settings that decide what a model.pt holds (as `Schema.settings`): the seed draws its batches and
#: augmentations, the clips are read at data.height x data.width.
MODEL_SETTINGS = ("seed", "data.height", "data.width", "model", "train")

#: Keys inside those settings that change how or where a stage runs, never what it writes: which device
#: and batch size run it, where the dataset lies (its content is the split fingerprint's), how often it logs
#: or saves its progress, how many rounds the run has, which rounds are evaluated. Changing one in
#: config.yaml makes nothing stale.
IGNORED_SETTINGS = frozenset({
    "data.root", "data.manifest", "data.num_workers",
    "extract.cluster_batch", "extract.infer_chunk", "extract.device", "extract.channels_last",
    "cluster.device", "cluster.knn_backend", "cluster.jaccard_cap_from",
    "train.rounds", "train.device", "train.channels_last", "train.checkpoint_every", "train.log_every",
    "evaluate.every",
})

#: Test-time terms whose on/off state eval.h5 records as attributes.
EVAL_SWITCHES = ("toc", "scp", "sts", "rerank")

#: Per-split columns every features group carries.
FEATURE_COLUMNS = ("features", "tracklet_index", "camera", "person_id", "num_frames")


def _schema(schema_name: str) -> Schema:
    for schema in SCHEMAS:
        if schema.name == schema_name:
            return schema
    raise KeyError(f"no artifact schema '{schema_name}'; known: {', '.join(s.name for s in SCHEMAS)}, {MODEL}")


def writer_of(schema_name: str) -> str:
    """The command that (re)writes artifacts of `schema_name` (`MODEL` for model.pt), e.g. "cluster".

    Raises:
        KeyError: no artifact has that schema.
    """
    return MODEL_WRITER if schema_name == MODEL else _schema(schema_name).writer


def settings_of(schema_name: str) -> tuple[str, ...]:
    """The config sections and keys that decide what an artifact of `schema_name` (`MODEL` for model.pt) holds.

    Raises:
        KeyError: no artifact has that schema.
    """
    return MODEL_SETTINGS if schema_name == MODEL else _schema(schema_name).settings
