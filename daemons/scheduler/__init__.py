"""The scheduler daemon: kube-scheduler extender, simulate-schedule and allocation APIs."""
