"""Files in and out, the same way everywhere (base layer).

Owns atomic writes (`atomic`: temporary name, fsync, rename, always UTF-8: the one way a stage leaves a file
for another), where a `path:` points (`sources`: local files, globs, fsspec URLs, hf:// datasets),
byte-level reading with its faults met as data (`rawio`: BOM, CRLF, UTF-16, invalid UTF-8, compressed streams
cut short) and strict JSONL (`jsonl.json_records`). The data stage's readers, eval's benchmark and task files
and SFT's conversations all read through here. May import errors only.
"""
