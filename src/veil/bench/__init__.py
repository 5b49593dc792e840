"""Benchmarks behind ``veil bench``: medians measured here, never estimated."""
