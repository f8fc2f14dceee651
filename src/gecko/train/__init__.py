"""The train stage: packed loader, LR schedules, FSDP2/compile/AC, DCP checkpoints, metrics and the loop.

May import gecko.model, gecko.shards, gecko.tokens and the base modules; not another stage (the trainer's
calls into eval's bits-per-byte and benchmark harness are listed exceptions in tests/test_architecture.py,
to be injected by the stage table).
"""
