"""The synthetic camera network: simulated walks (world) and rendered person crops (render)."""
