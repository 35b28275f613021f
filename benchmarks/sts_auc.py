"""How well a run's STS transit model separates same-identity from different-identity cross-camera train pairs.

Identity labels are used here only to score the label-free model (ROC AUC), never to build it.

    .venv/bin/python benchmarks/sts_auc.py artifacts/demo/aux.h5 artifacts/demo/round_001/features.h5
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from stages.artifacts.h5 import read_artifact
from stages.artifacts.schemas import FEATURES
from stages.auxinfo.aux_file import load_aux
from stages.errors import AuxReidError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("aux", help="aux.h5 with an STS model")
    parser.add_argument("features", help="features.h5 of the same dataset (for the train person ids)")
    args = parser.parse_args()
    features = read_artifact(args.features, FEATURES)
    aux = load_aux(args.aux, fingerprint=features.provenance.fingerprint)
    aux.require_sts("benchmarks/sts_auc.py")
    person, camera = features["train/person_id"], aux.camera("train")
    rows, cols = np.triu_indices(len(person), 1)
    cross = camera[rows] != camera[cols]
    rows, cols = rows[cross], cols[cross]
    p = aux.sts_probability("train", rows, "train", cols)
    same = person[rows] == person[cols]
    print(f"STS source {aux.transit.source}: {len(rows):,} cross-camera pairs, {int(same.sum()):,} same-identity, "
          f"ROC AUC {roc_auc_score(same, p):.3f}")


if __name__ == "__main__":
    try:
        main()
    except AuxReidError as exc:  # a mismatched or incomplete file: the one-line reason, as the CLI gives it
        raise SystemExit(f"error: {exc}") from None
