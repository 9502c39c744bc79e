"""`tensor-fusion hypervisor`: the node daemon that owns worker regions and GPU compute shares."""
