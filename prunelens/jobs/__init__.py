"""Jobs over many examples: the one loop (selection, resume, settings, parts), the job types, merging."""
