"""The kube-scheduler extender over the scheduler framework: wire types, verbs, decision cache, reply memo.

Pure like the rest of tfcore.sched; daemons/scheduler serves it over HTTP and does bind's API calls.
"""
