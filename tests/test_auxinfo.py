"""Tests of stages/auxinfo/transit.py: gap orientation, the STS factor, the transit lookup, AuxInfo errors."""

from pathlib import Path

import numpy as np
import pytest

from stages.auxinfo.aux_file import AuxInfo
from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import estimate_transit, histogram_edges
from stages.auxinfo.transit import TransitModel, oriented_gaps, sts_factor
from stages.errors import AuxReidError


def _model() -> TransitModel:
    edges = histogram_edges(bin_seconds=10.0, max_gap_seconds=100.0)
    counts = np.zeros((2, 2, edges.size - 1), dtype=np.int64)
    counts[0, 1, 13] = 8  # camera 0 -> camera 1 after 30..40 s
    counts[1, 0, 15] = 8  # camera 1 -> camera 0 after 50..60 s
    counts[0, 0, 10] = 8
    counts[1, 1, 11] = 8
    return estimate_transit(counts, edges=edges, sigma_bins=0.0, min_pairs=1, source="oracle")


def test_sts_factor_paper_values():
    np.testing.assert_allclose(sts_factor(np.array([0.0, 1.0]), 0.6, 8.0), [1.6, 1.0 + 0.6 * np.exp(-8.0)])


def test_oriented_gaps_earlier_start_is_from():
    cam_from, cam_to, gap = oriented_gaps(
        Spans(np.array([0, 1]), np.array([100.0, 0.0]), np.array([110.0, 5.0])),
        Spans(np.array([1, 0]), np.array([0.0, 100.0]), np.array([5.0, 110.0])),
    )
    assert cam_from.tolist() == [1, 1] and cam_to.tolist() == [0, 0]
    assert gap.tolist() == [95.0, 95.0]


def test_oriented_gaps_full_tie_breaks_by_camera():
    cam_from, cam_to, gap = oriented_gaps(Spans(np.array([2]), np.array([1.0]), np.array([2.0])),
                                          Spans(np.array([0]), np.array([1.0]), np.array([2.0])))
    assert (cam_from[0], cam_to[0], gap[0]) == (0, 2, -1.0)


def test_transit_probability_direction_and_range():
    model = _model()
    # camera 0 ends at 10 s, camera 1 starts at 45 s: gap 35 s, the 0 -> 1 peak
    p = model.probability(Spans(np.array([0, 1, 0, 0]), np.zeros(4), np.full(4, 10.0)),
                          Spans(np.array([1, 0, 1, 1]), np.array([45.0, 65.0, 65.0, 500.0]),
                                np.array([50.0, 70.0, 70.0, 510.0])))
    assert p.tolist() == [1.0, 1.0, 0.0, 0.0]  # 1 -> 0 after 55 s; 0 -> 1 after 55 s is unseen; 490 s is out of range


def test_aux_info_without_times_refuses_toc_and_sts():
    aux = AuxInfo(path=Path("aux.h5"), dataset="mars", fingerprint="f", has_times=False,
                  cameras={"train": np.array([0, 1])})
    assert aux.camera("train").tolist() == [0, 1]
    with pytest.raises(AuxReidError) as info:
        aux.require_times("cluster.sts")
    assert str(info.value) == (
        "aux.h5 of dataset mars has no timestamps: TOC and STS are unavailable; set cluster.sts=false"
    )
    with pytest.raises(AuxReidError, match=r"set cluster\.toc=false$"):
        _ = aux.cannot_link
    with pytest.raises(AuxReidError, match=r"set evaluate\.sts=false$"):
        aux.sts_probability("train", [0], "train", [1], option="evaluate.sts")


def test_aux_info_without_sts_model_says_how_to_add_it():
    aux = AuxInfo(path=Path("run/aux.h5"), dataset="synth", fingerprint="f", has_times=True,
                  cameras={"train": np.array([0])}, starts={"train": np.zeros(1)}, ends={"train": np.ones(1)})
    with pytest.raises(AuxReidError) as info:
        aux.require_sts("evaluate.sts")
    assert str(info.value) == (
        "run/aux.h5 has no STS model (it was mined without an STS source); re-run `auxreid mine-aux` with "
        "--features F.h5 (or --sts-source clusters / oracle), or set evaluate.sts=false"
    )


def test_aux_info_sts_probability_across_splits():
    aux = AuxInfo(
        path=Path("aux.h5"), dataset="synth", fingerprint="f", has_times=True,
        cameras={"query": np.array([0, 1]), "gallery": np.array([1, 0, 1])},
        starts={"query": np.array([0.0, 0.0]), "gallery": np.array([45.0, 65.0, 500.0])},
        ends={"query": np.array([10.0, 10.0]), "gallery": np.array([50.0, 70.0, 510.0])},
        transit=_model(),
    )
    p = aux.sts_probability("query", np.array([0, 1, 0]), "gallery", np.array([0, 1, 2]))
    assert p.tolist() == [1.0, 1.0, 0.0]
    assert aux.has_sts
