"""GECKO: build bilingual Korean·English LLMs that also code."""
