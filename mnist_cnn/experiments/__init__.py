"""Experiments: many seeded runs of ``train`` settings, on this machine or a cluster, and
the statistics that say whether a claim holds."""
