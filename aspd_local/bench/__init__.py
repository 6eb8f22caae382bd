"""Benchmarks: the machine's decode cost curve and the mode comparison behind ``python -m aspd_local bench``."""
