"""`tensor-fusion webhook`: the pod admission webhook (HTTPS) over tfcore.admission."""
