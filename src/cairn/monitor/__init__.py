"""Profiles, drift and live performance of models: the statistics behind the monitor service.

A library, not the service: ``services/monitor`` and the CLI call it. See docs/monitor.md.
"""

from cairn.monitor.columns import TOP_K, CategoricalProfile, NumericProfile
from cairn.monitor.profile import Profile, profile_samples, profile_table

__all__ = ["TOP_K", "CategoricalProfile", "NumericProfile", "Profile", "profile_samples",
           "profile_table"]
