"""Standalone mode: `tensor-fusion up` (a node without Kubernetes) and `tensor-fusion run`."""
