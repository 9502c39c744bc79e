"""Domain model: msgspec Structs for the tensor-fusion.ai/v1 API, quantities, pod annotations.

Pure: no I/O, no network, no Kubernetes client.
"""
