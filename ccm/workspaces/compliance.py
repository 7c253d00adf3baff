"""What the law asks of a workspace before it may send marketing email (CAN-SPAM: a valid
physical postal address of the sender in every message, beside a visible way to opt out)."""

from __future__ import annotations

from ccm.workspaces.schemas import WorkspacePolicy

NO_POSTAL_ADDRESS = "no_postal_address"


def marketing_email_refusal(policy: WorkspacePolicy) -> str | None:
    """Why this workspace may not send marketing email, or None when it may.

    The reason is a sentence for the person sending: the campaign launch and the send API return
    it as the error message, and a message stopped at send time is skipped with code
    :data:`NO_POSTAL_ADDRESS`.
    """
    if not (policy.postal_address or "").strip():
        return (
            "policy.postal_address: marketing email needs the workspace's postal address (CAN-SPAM); "
            'set it with PATCH /v1/workspace {"policy": {"postal_address": "<street, city, postcode, country>"}}'
        )
    return None
