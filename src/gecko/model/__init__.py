"""The network (llama.py, one file), named presets, vocabulary growth, the device, and the model's Hugging Face
folder (hf.py: the key table both ways). Imports only gecko.tokens and the base modules: everything above
uses the model, the model uses nothing above."""
