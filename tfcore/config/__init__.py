"""Configuration of tensor-fusion: settings and documents, parsed and validated with clear errors.

`tfcore.config.scheduler` (the KubeSchedulerConfiguration of scheduler-config.yaml) is pure:
text in, typed config out; watching files is left to the modules that do I/O.
"""
