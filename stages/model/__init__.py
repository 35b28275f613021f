"""The re-id network, its initial weights, the model.pt checkpoint and embedding of tracklets."""
