"""Thin process wiring, one package per daemon, plus the `tensor-fusion` CLI."""
