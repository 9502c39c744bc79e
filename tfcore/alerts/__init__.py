"""Alert rules: model and validation, templating, the firing/resolving state machine, evaluation."""
