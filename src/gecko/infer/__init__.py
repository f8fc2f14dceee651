"""Running a trained model: KV-cached sampling (`Sampling`, generate, generate_batch, streaming, stop
strings), the `gecko generate` stage, and chat (template rendering, assistant masks, `gecko chat`).

Used by eval (generation tasks), the SFT stage (gecko/sft.py) and the CLI. May import gecko.model (the
model and its Hugging Face folder), gecko.tokens and the base modules; never a stage package (data,
tokenizer, train, eval, export).
"""
