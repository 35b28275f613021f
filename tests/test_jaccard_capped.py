"""The city-scale Jaccard distance kept only below a cap: the same pairs, eps and clusters as the exact one wherever
the eps and the clustering radius lie below the cap, and a clear signal when they do not."""

from __future__ import annotations

import numpy as np
import pytest

from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import group_pairs, transit_from_pairs
from stages.clustering.dbscan import dbscan
from stages.clustering.eps import BeyondCap, adaptive_eps
from stages.clustering.icdbscan import icdbscan
from stages.clustering.jaccard import cap_for, encoded_rows, jaccard_from_weights
from stages.clustering.knn import knn_search
from stages.clustering.penalties import AuxPenalties


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(120, 32))
    members = rng.integers(2, 9, size=120)
    points = np.repeat(centres, members, axis=0) + 0.45 * rng.normal(size=(members.sum(), 32))
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    neighbours = knn_search(points, k=20, backend="torch")
    return encoded_rows(points, neighbours, k1=20, k2=6)


def _cameras(n: int) -> np.ndarray:
    return np.arange(n) % 5


def test_capped_distance_holds_exactly_the_pairs_below_the_cap(weights):
    full = jaccard_from_weights(weights)
    capped = jaccard_from_weights(weights, cap=0.7)
    assert capped.cap == pytest.approx(0.7) and capped.capped and not full.capped
    keep = full.data < np.float32(0.7)
    assert np.array_equal(capped.indices, full.indices[keep]) and np.array_equal(capped.data, full.data[keep])
    assert np.array_equal(np.diff(capped.indptr), np.add.reduceat(keep, full.indptr[:-1]))
    assert capped.nnz < full.nnz / 2
    with pytest.raises(ValueError, match="does not know its off-support values"):
        capped.implicit_values(np.array([0]), np.array([1]))


def test_eps_and_clusters_of_a_capped_distance_equal_the_exact_ones_below_the_cap(weights):
    n = weights.shape[0]
    full = jaccard_from_weights(weights).add_same_camera(_cameras(n), lam=0.006)
    capped = jaccard_from_weights(weights, cap=0.8).add_same_camera(_cameras(n), lam=0.006)
    assert capped.cap == pytest.approx(0.8)  # the penalties keep the cap: off-support pairs stay >= it
    for per_point in (2.0, 6.0):
        eps = adaptive_eps(full, rho=0.5, pairs_per_point=per_point)
        assert adaptive_eps(capped, rho=0.5, pairs_per_point=per_point) == eps < 0.8
        assert np.array_equal(dbscan(capped, eps=eps, min_samples=3), dbscan(full, eps=eps, min_samples=3))
        links = np.array([[0, 5], [7, 30], [11, 12], [40, 41]])
        assert np.array_equal(icdbscan(capped, links, eps=eps, min_samples=3, relaxed=-1.0),
                              icdbscan(full, links, eps=eps, min_samples=3, relaxed=-1.0))


def test_an_eps_reaching_past_the_cap_says_so(weights):
    capped = jaccard_from_weights(weights, cap=0.2)
    below = int(((capped.data > 1e-5) & (capped.data < np.float32(0.2))).sum()) // 2
    with pytest.raises(BeyondCap, match=r"^the adaptive eps averages the smallest [\d,]+ pairs, but only") as raised:
        adaptive_eps(capped, rho=0.5, pairs_per_point=40.0)
    assert raised.value.below == below and raised.value.needed == round(40 * weights.shape[0] / 2)


def test_cap_for_keeps_about_the_pairs_asked_per_row(weights):
    n = weights.shape[0]
    full = jaccard_from_weights(weights)
    for per_row in (4.0, 12.0):
        cap = cap_for(weights, pairs_per_row=per_row, sample=n)  # every row: the estimate is exact
        kept = ((full.data > 1e-5) & (full.data < np.float32(cap))).sum() / n
        assert per_row <= kept <= per_row + 0.05
        assert cap_for(weights, pairs_per_row=per_row, sample=n) == cap  # seeded
    assert cap_for(weights, pairs_per_row=10 * n, sample=50) == np.nextafter(np.float32(1), np.float32(0))  # all < 1


@pytest.mark.parametrize("eps_rule", [(), ("cluster.eps_pairs_per_point=8",)], ids=["rho", "pairs_per_point"])
def test_the_cluster_stage_gives_the_same_clusters_with_the_capped_distance(tmp_path, eps_rule):
    """The whole stage on the city test bed (TOC with relaxed cannot-links, SCP, STS): capped from 1 tracklet on
    against never capped, same eps and labels; the capped run keeps far fewer pairs."""
    from stages.artifacts.readers import config_from_artifact, read_clusters
    from stages.city_bed import write_city_bed
    from stages.cluster import cluster_to_file
    from stages.progress import RecordingProgress

    class Said(RecordingProgress):
        def __init__(self) -> None:
            super().__init__()
            self.done_messages: dict[str, str] = {}

        def done(self, task: str, message: str = "") -> None:
            self.done_messages[task] = message

    features, aux, _ = write_city_bed(tmp_path / "bed", tracklets=3000, dim=64, cameras=12, seed=4)
    found = {}
    for name, cap_from in (("full", 10**9), ("capped", 1)):
        config = config_from_artifact(features, overrides=[*eps_rule, "cluster.relaxed=-1.5",
                                                           f"cluster.jaccard_cap_from={cap_from}"])
        progress = Said()
        out = cluster_to_file(config, features_path=features, aux_path=aux, out_path=tmp_path / f"{name}.h5",
                              round=1, progress=progress)
        found[name] = (read_clusters(out), dict(progress.done_messages))
    (full, said_full), (capped, said_capped) = found["full"], found["capped"]
    assert capped.attrs["eps"] == full.attrs["eps"] and np.array_equal(capped["labels"], full["labels"])
    assert int(full.attrs["num_clusters"]) > 100
    stored = {name: int(said["Jaccard"].split(" stored pairs")[0].replace(",", "")) for name, said in
              (("full", said_full), ("capped", said_capped))}
    assert stored["capped"] < stored["full"] / 5, stored


def _aux_penalties(n: int, seconds: float = 600.0) -> AuxPenalties:
    """SCP and STS on n tracklets over 5 cameras in `seconds`, the transit model from groups of four."""
    rng = np.random.default_rng(1)
    camera = rng.integers(0, 5, n)
    start = rng.uniform(0.0, seconds, n)
    spans = Spans(camera, start, start + rng.uniform(1.0, 20.0, n))
    transit = transit_from_pairs(group_pairs(np.arange(n) // 4), spans, num_cameras=5, bin_seconds=2.0,
                                 max_gap_seconds=300.0, sigma_bins=2.0, min_pairs=3, source="oracle")
    return AuxPenalties(camera=camera, scp_lambda=0.03, spans=spans, transit=transit, sts_lambda=0.6, sts_gamma=8.0)


def test_penalties_evaluated_in_the_kernel_keep_exactly_the_pairs_the_penalised_distance_has_below_the_cap(weights):
    aux = _aux_penalties(weights.shape[0])
    full = jaccard_from_weights(weights)
    penalised = aux(full).data
    keep = penalised < np.float32(0.8)
    raw_below = full.data < np.float32(0.8)
    factor = penalised[keep] / np.maximum(full.data[keep], 1e-6)
    # The terms decide: STS (or SCP) pushes many raw pairs past the cap, and keeps others near their raw value.
    assert keep.sum() < 0.8 * raw_below.sum() and (factor[full.data[keep] > 0.1] < 1.3).any()
    compiled = jaccard_from_weights(weights, cap=0.8, penalties=aux)
    in_python = jaccard_from_weights(weights, cap=0.8, penalties=lambda distance: aux(distance))
    for capped in (compiled, in_python):
        assert np.array_equal(capped.indices, full.indices[keep])
        assert np.array_equal(capped.data, full.data[keep])  # the raw values: the penalties apply once, later
        assert np.array_equal(np.diff(capped.indptr), np.add.reduceat(keep, full.indptr[:-1]))
    assert np.array_equal(aux(compiled).data, penalised[keep])


def test_time_windows_hold_every_partner_with_a_transit_density_and_leave_the_distance_unchanged(weights):
    """In time order the kernel skips the penalty of partners outside a row's window (their STS factor is the
    largest); every pair whose density is above 0 must lie inside, and the kept pairs must be those of the
    penalised distance, over a day where most partners are hours apart."""
    n = weights.shape[0]
    aux = _aux_penalties(n, seconds=86_400.0)
    terms = aux.kernel_terms(in_time_order=True)
    order = aux.time_order()
    assert terms.windowed and np.all(np.diff(terms.rows[:, 2]) >= 0)
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    density = aux.transit.probability(aux.spans.take(order[rows.ravel()]), aux.spans.take(order[cols.ravel()]))
    inside = (cols.ravel() >= terms.window[rows.ravel(), 0]) & (cols.ravel() < terms.window[rows.ravel(), 1])
    assert (density > 0).any() and np.all(inside[density > 0])
    assert inside.mean() < 0.05  # the windows are narrow: the point of them
    full = jaccard_from_weights(weights)
    keep = aux(full).data < np.float32(0.7)
    capped = jaccard_from_weights(weights, cap=0.7, penalties=aux)
    assert 0 < keep.sum() < full.nnz
    assert np.array_equal(capped.indices, full.indices[keep]) and np.array_equal(capped.data, full.data[keep])
    assert np.array_equal(np.diff(capped.indptr), np.add.reduceat(keep, full.indptr[:-1]))


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
def test_spans_without_a_finite_time_turn_the_windows_off(weights):
    n = weights.shape[0]
    aux = _aux_penalties(n)
    start = aux.spans.start.copy()
    start[3] = np.nan
    broken = AuxPenalties(camera=aux.camera, scp_lambda=0.03, spans=Spans(aux.spans.camera, start, aux.spans.end),
                          transit=aux.transit, sts_lambda=0.6, sts_gamma=8.0)
    assert not broken.kernel_terms(in_time_order=True).windowed
    full = jaccard_from_weights(weights)
    keep = broken(full).data < np.float32(0.8)
    capped = jaccard_from_weights(weights, cap=0.8, penalties=broken)
    assert np.array_equal(capped.indices, full.indices[keep]) and np.array_equal(capped.data, full.data[keep])
