"""Pseudo labels: kNN, k-reciprocal Jaccard distance, eps, DBSCAN and cannot-link DBSCAN, centroids, quality."""
