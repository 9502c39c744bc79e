"""Vertical autoscaling of GPU workloads (pure): histograms, percentile recommender, cron and
external sources, merging, and the apply plan. daemons/controller/autoscaler.py wires it."""
