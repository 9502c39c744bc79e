"""Pod admission: AdmissionReview in, JSON patch or denial out. Pure (no I/O, no clients).

`review` parses and answers the wire format, `mutate` decides, `defaults` resolves profile and
pool defaults, `inject` adds the shim, `canary` decides TF or native for enabled-replicas.
"""

from tfcore.admission.canary import CanaryLedger, Owner, Sibling
from tfcore.admission.defaults import ClusterDefaults, resolve
from tfcore.admission.inject import InjectionConfig
from tfcore.admission.mutate import Candidate, admit, admit_review, decide_by_count, examine
from tfcore.admission.review import PodReview, Verdict, encode_response, parse_review
from tfcore.model.pods import Mode

__all__ = [
    "CanaryLedger",
    "Candidate",
    "ClusterDefaults",
    "InjectionConfig",
    "Mode",
    "Owner",
    "PodReview",
    "Sibling",
    "Verdict",
    "admit",
    "admit_review",
    "decide_by_count",
    "encode_response",
    "examine",
    "parse_review",
    "resolve",
]
