"""Campaigns: one template (or A/B variants) to a segment, scheduled, throttled, pausable."""
