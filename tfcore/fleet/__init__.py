"""Fleet lifecycle, pure: rollout batches, capacity, compaction, provisioning plans (no I/O)."""
