"""Vocabulary building (paper §4.1, Algorithms 1-2): architect + annotators, refinement, recursion."""
