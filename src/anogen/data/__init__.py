"""Data sources (one file per on-disk format), protocols (splits) and transforms (the only preprocessing)."""
