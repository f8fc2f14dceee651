"""The data stage: raw sources → RUN/data/corpus.jsonl, every document accounted for (docs/cleaning.md).

Organized by concern, lower first (tests/test_architecture.py checks the order):
- `stats` (the (step, reason, lang) ledger) and `corpus` (`CorpusRecord`, the corpus file);
- `engine/`: the datatrove, Ray and Slurm glue, in one place: the executor (local, Ray or Slurm) and the
  step bases that put every drop in the ledger;
- `text/`: text units the steps share: prose/code spans, normalized units, character classes;
- `steps/langid`: language detection, which the readers also use to label what a record leaves unlabeled;
- `io/`: the readers (sources and phase shards) over gecko.io's raw bytes;
- `phase`: the phase machinery (work folders, counts, results) the multi-pass steps run on;
- `steps/`: one module per step (normalize, langid, quality, pii, toxicity, dedup/, decontam, align, mix);
  a step imports no other step;
- `pipeline` (the stage: phases in order), `commands` (one step on one file) and `heldout` (held-out text for
  tokenizer measurements, read and normalized as the corpus is).
May import the base modules (config, errors, io, progress, tracking); no other stage, nor model or infer
(layers: docs/architecture.md).
"""
