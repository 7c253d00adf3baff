"""Segments: who a campaign is for, as rules compiled to SQL or as a static list."""
