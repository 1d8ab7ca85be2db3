"""Data sources (one file per on-disk format), protocols (splits) and transforms (the only preprocessing).

Data specs for the CLI and benchmarks: :mod:`anogen.data.spec` (``load_spec("mvtec:PATH")``).
"""
