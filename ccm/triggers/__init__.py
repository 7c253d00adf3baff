"""Triggers: an ingested event sends a templated message, now or after a delay unless another
event cancels it."""
