"""The controller's reconciliation logic: desired state from observed objects, pure.

Every function here takes plain API objects (dicts as the API server sends them) or
tfcore.model types and returns what should be written; nothing here does I/O. The daemon
(daemons/controller) lists and watches, calls these, and applies the differences.
"""
