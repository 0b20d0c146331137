"""What a user runs: the pipeline (files in, files out), edits, run folders, batches, the demo and the CLI."""
