"""Benchmarks of s0pcm: run them all with ``python -m bench`` (or ``./run bench``)."""
