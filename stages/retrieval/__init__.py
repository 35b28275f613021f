"""Query x gallery retrieval: distances with test-time terms, k-reciprocal re-ranking, mAP / CMC."""
