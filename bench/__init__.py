"""Benchmarks behind ``make bench``: figures, not assertions."""
