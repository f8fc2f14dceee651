"""Text units shared by the data steps: prose and code spans (`spans`), normalized units and window hashes
(`overlap`), NFKC and case folding of many texts by table (`fold`), character classes in one numpy pass
(`charclass`). Imports nothing from the rest of gecko."""
