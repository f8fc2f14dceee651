"""The tokenizer and tokenize stages: BPE training, extension and reports, and pretokenization of the
corpus into shards. The contracts other stages read live below it: gecko.tokens (special tokens, chat
template, loading tokenizer.json) and gecko.shards (the shard format and reader). May import those and the
base modules; not another stage (tokenizer compare reading held-out text through gecko.data is a listed
exception in tests/test_architecture.py).
"""
