"""The audit log: who changed what in a workspace, when, with the before and after, append-only."""
