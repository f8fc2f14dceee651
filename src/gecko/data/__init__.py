"""The data stage: raw sources → RUN/data/corpus.jsonl, every document accounted for (docs/cleaning.md).

Owns the source readers (readers, over gecko.io), the clean steps (normalize, langid, filters, pii, toxicity),
dedup, decontamination, ko↔en alignment, the mix and the stats, and held-out text for tokenizer measurements
(heldout). May import the base modules (config, errors, io, progress, tracking); no other stage, nor
model or infer (layers: docs/architecture.md).
"""
