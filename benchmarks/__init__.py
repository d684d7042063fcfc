"""Benchmarks of the session engines against Django's own: ``make bench`` (see README.md)."""
