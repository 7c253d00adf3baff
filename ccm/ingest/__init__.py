"""Segment-spec event ingestion: write keys, the tracking endpoints, identity resolution."""
