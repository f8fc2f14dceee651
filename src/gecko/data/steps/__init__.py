"""The data stage's steps, one module each: normalize, langid, quality, pii, toxicity (the clean phase's
datatrove steps), dedup/ (exact, MinHash and boilerplate, several datatrove stages), decontam, align, mix.
A step imports gecko.data's lower units (stats, corpus, engine, text, io, phase) and the base modules, never
another step (langid excepted: it is also the readers' language detection)."""
