"""The cluster stage over torchrun ranks (2 gloo processes here): the same clusters.h5 as one process, written once,
and nothing written when a rank fails."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch.distributed
import torch.multiprocessing as mp

from stages.artifacts.lock import LOCK_NAME
from stages.artifacts.readers import config_from_artifact
from stages.city_bed import write_city_bed
from stages.cluster import cluster_to_file
from stages.shards import WHOLE, Shard

#: kNN, Jaccard and STS / SCP / TOC on the capped path (from 500 tracklets), approximate and exact.
CAPPED = ("cluster.jaccard_cap_from=500", "cluster.eps_pairs_per_point=8")
SETTINGS = {
    "capped, hnsw": (*CAPPED, "cluster.knn=hnsw"),
    "capped, exact": (*CAPPED, "cluster.knn=exact"),
    "every pair, paper eps": ("cluster.knn=exact",),
}


@pytest.fixture(scope="module")
def bed(module_tmp):
    folder = module_tmp.mktemp("city")
    write_city_bed(folder, tracklets=1500, dim=32, cameras=12, seed=3)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster(folder: Path, out: Path, overrides, shard: Shard | None = None) -> Path:
    config = config_from_artifact(folder / "features.h5", overrides=list(overrides))
    return cluster_to_file(config, features_path=folder / "features.h5", aux_path=folder / "aux.h5", out_path=out,
                           round=1, shard=shard)


def _rank(rank: int, world: int, port: int, folder: str, out: str, overrides, fail_rank: int | None) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    if rank == fail_rank:
        from stages.clustering import jaccard

        def broken(*args, **kwargs):
            raise MemoryError("rank 1 ran out of memory in the Jaccard rows")

        jaccard.min_sum_scratch = broken
    _cluster(Path(folder), Path(out), overrides)  # the shard comes from torchrun's variables
    torch.distributed.destroy_process_group()


def _contents(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        found = {}
        f.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
        return found


@pytest.mark.parametrize("name", list(SETTINGS))
def test_two_ranks_write_the_clusters_of_one_process(tmp_path, bed, name):
    one = _cluster(bed, tmp_path / "one.h5", SETTINGS[name], shard=WHOLE)
    two = tmp_path / "two" / "clusters.h5"
    two.parent.mkdir()
    mp.spawn(_rank, args=(2, _free_port(), str(bed), str(two), SETTINGS[name], None), nprocs=2, join=True)
    assert sorted(p.name for p in two.parent.iterdir()) == ["clusters.h5"]
    expected, found = _contents(one), _contents(two)
    assert sorted(found) == sorted(expected)
    for key, value in expected.items():
        if key != "provenance":
            np.testing.assert_array_equal(found[key], value, err_msg=key)
    labels = expected["labels"]
    assert labels.max() >= 50 and (labels >= 0).mean() > 0.25  # a real clustering, not all noise


def test_a_failing_rank_fails_the_stage_and_writes_nothing(tmp_path, bed):
    out = tmp_path / "run" / "clusters.h5"
    out.parent.mkdir()
    with pytest.raises(Exception, match="rank 1 ran out of memory"):
        mp.spawn(_rank, args=(2, _free_port(), str(bed), str(out), SETTINGS["capped, exact"], 1), nprocs=2, join=True)
    # No clusters.h5 and no temporary; rank 0 was stopped holding the run's lock, which the kernel has dropped.
    assert [p.name for p in out.parent.iterdir() if p.name != LOCK_NAME] == []


def test_shard_rows_split_contiguously_and_cover_every_row():
    bounds = [Shard(rank=r, world=3).bounds(10) for r in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, 10)]
    assert WHOLE.bounds(10) == (0, 10) and WHOLE.gather(np.arange(4)).tolist() == [0, 1, 2, 3]
