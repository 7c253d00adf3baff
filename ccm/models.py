"""Imports every model so that ``metadata`` describes the whole schema (for Alembic and tests)."""

from ccm.audit.models import AuditEntry
from ccm.auth.models import ApiKey
from ccm.campaigns.models import Campaign, CampaignHoldout, CampaignVariant
from ccm.channels.models import OutboxItem, ProviderAccount
from ccm.consent.models import ConsentRecord
from ccm.conversations.models import Conversation, InboundMessage
from ccm.db import Base
from ccm.engagement.models import EngagementEvent
from ccm.idempotency.models import IdempotencyKey
from ccm.identity.models import ProfileMerge
from ccm.imports.models import ImportChunk, ImportJob, ImportRowError
from ccm.ingest.models import Account, AccountMember, Event, EventSeen, ProfileAnonymousId
from ccm.jobs import PendingJob
from ccm.message_templates.models import MessageTemplate, Snippet, TemplateVersion
from ccm.messages.models import DeliveryAttempt, Message
from ccm.profiles.models import Profile
from ccm.segments.models import Segment, SegmentMember
from ccm.suppression.models import Suppression
from ccm.triggers.models import Trigger, TriggerFire, TriggerVersion
from ccm.users.models import LoginFailure, User, UserSession
from ccm.webhooks.models import WebhookDelivery, WebhookEndpoint
from ccm.workspaces.models import Workspace

metadata = Base.metadata

__all__ = [
    "Account",
    "AccountMember",
    "ApiKey",
    "AuditEntry",
    "Campaign",
    "CampaignHoldout",
    "CampaignVariant",
    "ConsentRecord",
    "Conversation",
    "DeliveryAttempt",
    "EngagementEvent",
    "Event",
    "EventSeen",
    "IdempotencyKey",
    "ImportChunk",
    "ImportJob",
    "ImportRowError",
    "InboundMessage",
    "Message",
    "MessageTemplate",
    "OutboxItem",
    "PendingJob",
    "ProfileAnonymousId",
    "ProfileMerge",
    "Profile",
    "ProviderAccount",
    "Segment",
    "SegmentMember",
    "Snippet",
    "Suppression",
    "TemplateVersion",
    "Trigger",
    "TriggerFire",
    "User",
    "UserSession",
    "LoginFailure",
    "TriggerVersion",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
    "metadata",
]
