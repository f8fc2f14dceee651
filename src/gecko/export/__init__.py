"""The export stage's extras around model/hf.py's Hugging Face folder: the model card and GGUF.
May import gecko.infer, gecko.model, gecko.tokens and the base modules; not another stage."""
