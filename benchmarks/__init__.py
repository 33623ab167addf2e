"""Benchmarks that print figures (`make bench`); targets only 127.0.0.1 and stop by themselves."""
