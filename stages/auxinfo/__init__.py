"""Auxiliary information mined from a dataset: time-overlap cannot-links (TOC) and the transit-time model (STS)."""
