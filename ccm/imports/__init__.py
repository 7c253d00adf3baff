"""CSV import of profiles: upload, detect, map, validate and upsert in resumable chunks."""
