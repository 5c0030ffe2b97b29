"""Downstream proof (paper §5): generative retrieval on item tokenizations, SASRec, metrics."""
