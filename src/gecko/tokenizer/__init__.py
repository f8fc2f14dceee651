"""The tokenizer and tokenize stages: BPE training, extension and reports, and pretokenization of the
corpus into shards. The contracts other stages read live below it: gecko.tokens (special tokens, chat
template, loading tokenizer.json) and gecko.shards (the shard format and reader). May import those and the
base modules; not another stage: compare, report and extend are handed the held-out text reader
(gecko.data.heldout.read_texts) by the CLI.
"""
