"""Metrics: line protocol, table definitions, the store interface and the batching writer."""
