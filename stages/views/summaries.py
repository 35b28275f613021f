"""Stage summaries for people: the titled key/value sections `auxreid inspect` and the commands print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from stages.artifacts.h5 import Artifact
from stages.artifacts.schemas import EVAL_SWITCHES
from stages.auxinfo.transit import FALLBACK_FLAT, FALLBACK_OWN, FALLBACK_POOLED
from stages.clustering.quality import QUALITY_KEYS, cluster_sizes, noise_ratio, size_histogram
from stages.data.base import SPLITS
from stages.views.labels import camera_labels_of, camera_text, format_span

if TYPE_CHECKING:  # reading a model needs torch; the other summaries do not
    from stages.artifacts.model_file import ModelFile


def cameras_text(cameras: np.ndarray, labels: tuple[str, ...]) -> str:
    """'3: gate, lobby, street': how many distinct cameras, then their labels in index order."""
    present = np.unique(np.asarray(cameras, dtype=np.int64)).tolist()
    return f"{len(present)}: {', '.join(camera_text(labels, camera) for camera in present)}" if present else "0"


def summarize_clusters(artifact: Artifact) -> list[tuple[str, list[tuple[str, str]]]]:
    """Clusters, noise, eps, violations, size histogram and quality, for `auxreid inspect clusters.h5`."""
    attrs = artifact.attrs
    sizes = artifact.data.get("sizes", cluster_sizes(artifact["labels"]))
    overview = [
        ("tracklets", str(artifact["labels"].shape[0])),
        *([("cameras", cameras_text(artifact["camera"], camera_labels_of(artifact.data)))]
          if "camera" in artifact else []),
        ("clusters", str(int(attrs.get("num_clusters", sizes.size)))),
        ("noise ratio", f"{float(attrs.get('noise_ratio', noise_ratio(artifact['labels']))):.3f}"),
        ("eps", f"{float(attrs.get('eps', float('nan'))):.6g} ({attrs.get('eps_source', '?')})"),
        ("algorithm", str(attrs.get("algorithm", "?"))),
        ("cannot-link violations", _violations_text(attrs)),
        ("sizes min / median / max", f"{sizes.min()} / {np.median(sizes):g} / {sizes.max()}" if sizes.size else "-"),
        ("RLSCE neighbours per cluster", str(artifact["nearest_clusters"].shape[1])),
    ]
    histogram = [(f"size {bucket}", f"{count} clusters") for bucket, count in size_histogram(sizes)]
    histogram = histogram or [("none", "every tracklet is noise: raise cluster.eps or use cluster.eps_mode=adaptive")]
    sections = [("clusters", overview), ("cluster sizes", histogram)]
    scores = [(key, f"{float(artifact[f'quality/{key}']):.4f}") for key in QUALITY_KEYS if f"quality/{key}" in artifact]
    if scores:
        sections.append(("quality vs ids", [("computed over", "non-noise tracklets (inspection only)")] + scores))
    return sections


def _violations_text(attrs: dict[str, Any]) -> str:
    if "cannot_link_violations" not in attrs:
        return "unknown (no cannot-link pairs)"
    text = f"{int(attrs['cannot_link_violations'])} of {int(attrs.get('cannot_link_pairs', 0))} TOC pairs"
    if "cannot_link_enforced" in attrs:
        text += f" ({int(attrs['cannot_link_enforced'])} enforced, 0 violated)"
    return text


def summarize_eval(artifact: Artifact) -> list[tuple[str, list[tuple[str, str]]]]:
    """Metrics sections for `auxreid inspect eval.h5`."""
    sections = []
    for title, prefix in (("metrics", "metrics"), ("plain squared Euclidean distance", "plain")):
        if f"{prefix}/mAP" not in artifact:
            continue
        cmc = artifact[f"{prefix}/cmc"]
        rows = [("mAP", f"{float(artifact[f'{prefix}/mAP']):.4f}")]
        rows += [(f"rank-{r}", f"{cmc[r - 1]:.4f}") for r in (1, 5, 10, 20) if r <= len(cmc)]
        rows.append(("mINP", f"{float(artifact[f'{prefix}/mINP']):.4f}"))
        sections.append((title, rows))
    attrs = artifact.attrs
    sections.append(("evaluation", [
        ("queries valid / skipped", f"{attrs.get('num_valid_queries', '?')} / {attrs.get('num_skipped_queries', '?')}"),
        ("test-time TOC / SCP / STS / re-rank", " / ".join(str(attrs.get(k, "?")) for k in EVAL_SWITCHES)),
        ("features from", str(attrs.get("source", "?"))),
    ]))
    return sections


def summarize_features(artifact: Artifact) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per-split summary for `auxreid inspect features.h5`: sizes, feature norms, frames, ids."""
    sections = []
    for split in (s for s in SPLITS if f"{s}/features" in artifact):
        features = artifact[f"{split}/features"]
        norms = np.linalg.norm(features, axis=1)
        ids = artifact[f"{split}/person_id"]
        rows = [
            ("mode", str(artifact.attrs.get("mode", "?"))),
            ("tracklets x dim", " x ".join(map(str, features.shape))),
            ("feature norm min / mean / max", f"{norms.min():.4g} / {norms.mean():.4g} / {norms.max():.4g}"),
            ("cameras", cameras_text(artifact[f"{split}/camera"], camera_labels_of(artifact.data))),
            ("known person ids", str(len(np.unique(ids[ids >= 0])))),
        ]
        if f"{split}/frames_used" in artifact:
            rows.append(("frames averaged per tracklet (mean)", f"{artifact[f'{split}/frames_used'].mean():.1f}"))
        if f"{split}/sampled_frames" in artifact:
            rows.append(("frames per tracklet run", str(artifact[f"{split}/sampled_frames"].shape[1])))
        rows.append(("bad frames skipped", str(len(artifact.data.get(f"{split}/bad_frames", ())))))
        sections.append((f"{split} features", rows))
    return sections


def summarize_aux(artifact: Artifact) -> list[tuple[str, list[tuple[str, str]]]]:
    """Counts for `auxreid inspect aux.h5`: tracklets, cameras by label, the time span, TOC pairs, STS support per
    camera pair."""
    has_times = bool(artifact.attrs.get("has_times", False))
    cameras = cameras_text(np.arange(int(artifact.attrs.get("num_cameras", 0))), camera_labels_of(artifact.data))
    rows = [(f"{s} tracklets", f"{len(artifact[f'{s}/camera']):,}") for s in SPLITS if f"{s}/camera" in artifact]
    rows += [("cameras", cameras), ("timestamps", "yes" if has_times else "no (TOC and STS unavailable)")]
    spans = [(artifact[f"{s}/start"], artifact[f"{s}/end"]) for s in SPLITS
             if has_times and f"{s}/start" in artifact and len(artifact[f"{s}/start"])]
    if spans:
        rows.append(("time span", format_span(min(float(a.min()) for a, _ in spans),
                                              max(float(b.max()) for _, b in spans))))
    sections = [("aux: tracklets", rows)]
    if has_times:
        sections.append(("TOC", [
            ("train cannot-link pairs", f"{len(artifact['toc/train_pairs']):,}"),
            ("query x gallery overlap pairs", f"{len(artifact['toc/query_gallery_pairs']):,}"),
        ]))
    if "sts/density" in artifact:
        fallback = np.asarray(artifact["sts/fallback"])
        edges = np.asarray(artifact["sts/edges"])
        sections.append(("STS transit model", [
            ("source", str(artifact.attrs.get("sts_source", ""))),
            ("confident pairs", f"{int(artifact.attrs.get('sts_pairs', 0)):,}"),
            ("pairs inside the gap range", f"{int(np.asarray(artifact['sts/support']).sum()):,}"),
            ("bins", f"{edges.size - 1} x {edges[1] - edges[0]:g} s over [{edges[0]:g}, {edges[-1]:g}] s"),
            ("smoothing sigma (bins)", f"{float(artifact['sts/sigma_bins']):g}"),
            (f"camera pairs with >= {int(artifact['sts/min_pairs'])} pairs (own model)",
             f"{int((fallback == FALLBACK_OWN).sum())} of {fallback.size}"),
            ("camera pairs using the pooled model", str(int((fallback == FALLBACK_POOLED).sum()))),
            ("camera pairs without evidence (p = 1)", str(int((fallback == FALLBACK_FLAT).sum()))),
        ]))
    elif has_times:
        sections.append(("STS transit model", [("source", "none (re-run mine-aux with --features F.h5)")]))
    return sections


def summarize_config(config: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """A config (as `config_to_dict` gives it) for `auxreid inspect`: the top-level keys, then one section each."""
    sections = [("top level", [(key, str(value)) for key, value in config.items() if not isinstance(value, dict)])]
    sections += [(name, [(key, str(value)) for key, value in values.items()])
                 for name, values in config.items() if isinstance(values, dict)]
    return sections


#: Schema name -> its summary, for `auxreid inspect`.
SUMMARIES = {"aux": summarize_aux, "features": summarize_features, "clusters": summarize_clusters, "eval": summarize_eval}


def summarize_model(model_file: ModelFile) -> list[tuple[str, list[tuple[str, str]]]]:
    """model.pt for `auxreid inspect`: what it is, where it came from, what training recorded."""
    entries = model_file.entries
    student = entries["student"]
    parameters = sum(int(v.numel()) for k, v in student.items() if not k.endswith(("running_mean", "running_var",
                                                                                     "num_batches_tracked")))
    rows = [
        ("format", f"{entries['format']} v{entries['version']}"),
        ("arch", str(entries["arch"])),
        ("round", str(model_file.round)),
        ("step (EMA, all rounds)", str(model_file.step)),
        ("classifier rows", str(model_file.num_classes)),
        ("parameters", f"{parameters:,}"),
        ("dataset", model_file.dataset or "-"),
        ("fingerprint", model_file.fingerprint or "-"),
        ("config_hash", str(entries["config_hash"])),
        ("package_version", str(entries["package_version"])),
        ("created", str(entries["created"])),
    ]
    for role, value in dict(entries["parents"]).items():
        rows.append((f"parent {role}", f"{str(value['sha256'])[:16]} ({value['path']})"))
    sections = [("model.pt", rows)]
    training = [(key, str(entries[key])) for key in ("num_clusters", "iterations", "labelled_tracklets", "world_size")
                if key in entries]
    losses = entries.get("mean_losses", {})
    training += [(f"mean {name} loss", f"{float(value):.4f}") for name, value in dict(losses).items()]
    if "optimizer" in entries:
        groups = entries["optimizer"].get("param_groups", [])
        training.append(("optimizer", f"Adam state of {len(entries['optimizer'].get('state', {}))} tensors, "
                                      f"lr {groups[0]['lr']:.3g}" if groups else "present"))
    if "imported_from" in entries:
        training.append(("imported from", str(entries["imported_from"])))
    if training:
        sections.append(("training", training))
    return sections
