"""`tensor-fusion controller`: the operator's reconcilers behind a Lease-based leader election."""
