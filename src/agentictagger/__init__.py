"""agentictagger: hierarchical, human-readable item descriptors as semantic IDs for recommenders."""

__version__ = "0.1.0"
