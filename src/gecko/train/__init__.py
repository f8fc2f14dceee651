"""The train stage: packed loader, LR schedules, FSDP2/compile/AC, DCP checkpoints, metrics and the loop.

May import gecko.infer (validation in bits per byte), gecko.model, gecko.shards, gecko.tokens and the base
modules; not another stage. The benchmark hook (train.eval_tasks) comes from the stage table.
"""
