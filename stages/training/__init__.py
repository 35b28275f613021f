"""One round of mean-teacher training: losses, optimiser, the chunked forward, the step and the loop."""
