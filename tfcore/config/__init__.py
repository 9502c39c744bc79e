"""Configuration documents of tensor-fusion, parsed and validated (pure: text in, typed config out)."""
