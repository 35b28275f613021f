"""Training stage: losses, sampling and the mean-teacher round (DESIGN section 4.4)."""
