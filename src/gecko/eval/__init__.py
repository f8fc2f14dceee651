"""The eval stage: bits-per-byte per language (computed by gecko.infer.bpb, which the trainer's validation
shares), multiple-choice and generation benchmarks, the code sandbox,
task files and lm-eval tasks, and the report. It is handed the trained model by the pipeline (stages.py) and
never reads training files itself. May import gecko.infer, gecko.model, gecko.shards, gecko.tokens and the
base modules; not another stage.
"""
