"""Benchmarks: each compares two things in one process run and prints one JSON line."""
