"""Artifact files: the HDF5 container with provenance, the schemas, one reader per schema, the run directory."""
