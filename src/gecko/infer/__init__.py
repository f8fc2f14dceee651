"""Running a trained model: KV-cached sampling (`Sampling`, generate, generate_batch, streaming, stop
strings), the `gecko generate` stage, chat (template rendering, assistant masks, `gecko chat`), and scoring
held-out shards in bits per byte (bpb.py).

Used by eval (generation tasks, bits per byte), train (validation), the SFT stage (gecko/sft.py) and the
CLI. May import gecko.model (the model and its Hugging Face folder), gecko.tokens, gecko.shards and the base
modules; never a stage package (data, tokenizer, train, eval, export).
"""
