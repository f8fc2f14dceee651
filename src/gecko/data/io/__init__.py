"""Readers of the data stage: configured sources and the phases' JSONL shards as datatrove documents, bad
records quarantined with file:line. Bytes come through the base layer's gecko.io (rawio, sources); imports
gecko.data.stats and steps.langid (labels for unlabeled records) and the base modules."""
