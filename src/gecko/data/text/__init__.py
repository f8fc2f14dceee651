"""Text units shared by the data steps: prose and code spans (`spans`), normalized units and window hashes
(`overlap`), character classes in one numpy pass (`charclass`). Imports nothing from the rest of gecko."""
