"""The long-lived objects one CCM process needs, built once from settings and passed explicitly:
to the Flask app (``app.extensions["ccm"]``) and to every actor (bound by :func:`ccm.jobs.declare_actors`).

The runtime holds the domains' tools and imports no domain's services: the entry points
(:mod:`ccm.app`, :mod:`ccm.worker`, the CLI) import :mod:`ccm.models` so that every mapper is
registered before a runtime is used.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import dramatiq
from sqlalchemy.orm import Session

from ccm.brokers import build_broker, connect_redis
from ccm.channels.guards import ProviderGuards
from ccm.channels.registry import ChannelProviders
from ccm.config import Settings
from ccm.crypto import SecretBox
from ccm.db import Database
from ccm.engagement.buffer import HitBuffer
from ccm.engagement.tracking import LinkSigner
from ccm.jobs import Publisher
from ccm.message_templates.models import TemplateVersion
from ccm.message_templates.rendering import PublishedTemplate
from ccm.message_templates.sandbox import TemplateSandbox
from ccm.message_templates.service import snapshot
from ccm.tokens import Signer
from ccm.webhooks.service import Subscriptions

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: dramatiq.Broker
    publisher: Publisher
    providers: ChannelProviders
    sandbox: TemplateSandbox
    signer: Signer
    secret_box: SecretBox
    guards: ProviderGuards
    link_signer: LinkSigner
    hits: HitBuffer
    webhooks: Subscriptions
    templates: TemplateCache = field(default_factory=lambda: TemplateCache())

    def close(self) -> None:
        self.providers.close()
        self.broker.close()
        self.db.dispose()


class TemplateCache:
    """Published template versions by id. Versions never change, so entries never go stale."""

    def __init__(self, size: int = 1024) -> None:
        self._items: OrderedDict[str, PublishedTemplate] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, session: Session, version_id: str, key: str, sandbox: TemplateSandbox) -> PublishedTemplate:
        with self._lock:
            found = self._items.get(version_id)
            if found is not None:
                self._items.move_to_end(version_id)
                return found
        row = session.get(TemplateVersion, version_id)
        assert row is not None, f"template version {version_id} vanished"
        published = snapshot(row, key, sandbox)
        with self._lock:
            self._items[version_id] = published
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return published


def create_runtime(settings: Settings) -> Runtime:
    db = Database(settings.resolved_database_url)
    redis_client = connect_redis(settings.redis_url) if settings.redis_url else None  # limits, hits, maybe the broker
    broker = build_broker(settings, redis_client)
    publisher = Publisher(broker, db.sessionmaker)
    webhooks = Subscriptions(grace=settings.relay_grace)
    db.sessionmaker.configure(info={"publisher": publisher, "webhooks": webhooks})
    secret = settings.resolved_secret_key()
    box = SecretBox(secret, purpose="ccm.provider-secrets")
    return Runtime(
        settings=settings,
        db=db,
        broker=broker,
        publisher=publisher,
        providers=ChannelProviders(settings, box, db),
        sandbox=TemplateSandbox(timeout=settings.render_timeout, max_chars=settings.render_max_chars),
        signer=Signer(secret),
        secret_box=box,
        guards=ProviderGuards(redis_client, namespace=settings.redis_namespace),
        link_signer=LinkSigner(secret),
        hits=HitBuffer(redis_client, namespace=settings.redis_namespace),
        webhooks=webhooks,
    )
