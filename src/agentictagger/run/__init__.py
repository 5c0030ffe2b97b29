"""The run layer: everything about a run folder (its layout and manifest, settings fingerprints,
the lock, staged commits, leftovers) and the stages that read and write it — build, assign, add,
edit, report, explore, the sharded assign and the estimate. :class:`agentictagger.api.AgenticTagger`
is the one façade over it; the CLI goes through that façade."""
