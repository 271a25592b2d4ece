"""The egress guard moved to :mod:`cairn.kernel.egress` (the pipelines service's commit statuses
use it too); these names stay importable from here for the gateway's existing callers."""

from cairn.kernel.egress import ALLOW_HINT, Egress, Target, parse_target, refusal

__all__ = ["ALLOW_HINT", "Egress", "Target", "parse_target", "refusal"]
