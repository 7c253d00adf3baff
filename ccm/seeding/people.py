"""Made-up people, deterministic from a seed: every row ``ccm seed`` writes for one profile.

Nobody here can be reached: emails are at domains reserved for examples and tests (RFC 2606:
``example.com``, ``example.org``, ``example.net``, ``*.test``), phones are phonenumbers' example
numbers for their region with other last digits (valid E.164, in the ranges the library documents
by example). Time zones follow a realistic spread of an international audience, with some
profiles without one and a few with an invalid one (a campaign's fallback must count them).
Rollups (engagement counters, score, best channel) are computed from the engagement events made
here, the way :mod:`ccm.engagement.rollups` computes them."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from ccm.engagement.rollups import ENGAGED, score
from ccm.ids import new_id
from ccm.seeding.data import DOMAINS, INVALID_TIMEZONES, NAMES, PAGES, PLANS, PRODUCTS, REGIONS
from ccm.suppression.service import address_hash, canonical

_CUMULATIVE = list(itertools.accumulate(region.weight for region in REGIONS))
EVENT_DAYS = 90
RANKINGS = (("email",), ("email",), ("email", "sms"), ("sms", "email"), ())


@dataclass
class Rows:
    """The rows of one chunk of profiles, per table, as column-name dicts."""

    profile: list[dict[str, Any]] = field(default_factory=list)
    consent_record: list[dict[str, Any]] = field(default_factory=list)
    suppression: list[dict[str, Any]] = field(default_factory=list)
    event: list[dict[str, Any]] = field(default_factory=list)
    engagement_event: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {name: getattr(self, name) for name in TABLES}


TABLES = ("profile", "consent_record", "suppression", "event", "engagement_event")
"""In the order they are written (profiles first: the others point at them)."""


@functools.cache
def phone_prefix(country: str) -> str:
    """The region's example mobile number without its last four digits (E.164)."""
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None, f"phonenumbers has no example mobile number for {country}"
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[:-4]


def ascii_name(name: str) -> str:
    """``José`` → ``jose``: the local part of a made-up email address."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
"""Ten bits as two Crockford base32 characters."""
EMPTY: dict[str, Any] = {}
NO_NOTES: list[Any] = []
CONTEXT = {"library": {"name": "ccm seed"}}
PROOF = {"seeded": True}
CONSTANTS = (EMPTY, NO_NOTES, CONTEXT, PROOF)
"""Values shared by many rows (written as JSON once, see :mod:`ccm.seeding.service`)."""


class Ids:
    """Ids shaped like :func:`ccm.ids.new_id`'s, made fast: the high 80 bits of one fresh id, then
    a counter in the low 50 (``ccm.ids`` encodes each id with pure-Python base32, which would be
    a third of a seed run). Unique: no two blocks share their high bits."""

    def __init__(self) -> None:
        self.head = new_id("x")[2:18]
        self.count = 0

    def next(self, prefix: str) -> str:
        n, pairs = self.count, _PAIRS
        self.count += 1
        tail = pairs[n >> 40 & 1023] + pairs[n >> 30 & 1023] + pairs[n >> 20 & 1023] + pairs[n >> 10 & 1023]
        return f"{prefix}_{self.head}{tail}{pairs[n & 1023]}"


@dataclass(frozen=True)
class Chunk:
    """Profiles ``start`` … ``start + count - 1`` of a seed run, made at ``now``."""

    workspace_id: str
    seed: int
    start: int
    count: int
    events_per_profile: int
    now: dt.datetime

    def rows(self) -> Rows:
        """Every row of the chunk's profiles; the same seed and start give the same people."""
        rng, ids = random.Random(f"{self.seed}:{self.start}"), Ids()
        rows = Rows()
        for number in range(self.start, self.start + self.count):
            _Person(self, rng, ids, number).add_to(rows)
        return rows


class _Person:
    """One made-up profile and everything that happened to it."""

    def __init__(self, chunk: Chunk, rng: random.Random, ids: Ids, number: int) -> None:
        self.chunk, self.rng, self.ids, self.number = chunk, rng, ids, number
        self.id = ids.next("prf")
        self.region = rng.choices(REGIONS, cum_weights=_CUMULATIVE)[0]
        firsts, lasts = NAMES[self.region.names]
        self.first, self.last = self.pick(firsts), self.pick(lasts)
        self.email = self._email()
        self.phone = f"{phone_prefix(self.region.country)}{self.below(10_000):04d}" if rng.random() < 0.65 else None
        self.signed_up = chunk.now - dt.timedelta(days=rng.uniform(1, 3 * 365))

    def pick(self, items: Sequence[Any]) -> Any:
        """One of ``items`` (``Random.choice`` costs several calls more, a million times over)."""
        return items[int(self.rng.random() * len(items))]

    def below(self, n: int) -> int:
        return int(self.rng.random() * n)

    def _email(self) -> str | None:
        if self.rng.random() >= 0.95:
            return None
        return f"{ascii_name(self.first)}.{ascii_name(self.last)}.{self.number}@{self.pick(DOMAINS)}"

    def ago(self, days: float) -> dt.datetime:
        """A moment in the last ``days`` days (never before the person signed up)."""
        return max(self.chunk.now - dt.timedelta(seconds=self.rng.uniform(0, days * 86400)), self.signed_up)

    def add_to(self, rows: Rows) -> None:
        consent = self._consent(rows)
        engagement = self._engagement(rows, consent)
        self._events(rows)
        rows.profile.append(self._profile(engagement))

    def _timezone(self) -> str | None:
        draw = self.rng.random()
        if draw < 0.10:
            return None
        if draw < 0.12:
            return self.pick(INVALID_TIMEZONES)
        return self.region.timezone

    def _profile(self, engagement: list[dict[str, Any]]) -> dict[str, Any]:
        rng, region = self.rng, self.region
        channels = [c for c in self.pick(RANKINGS) if self._has(c)]
        rollup, total, best = rollups_of(engagement, now=self.chunk.now)
        return {
            "id": self.id,
            "workspace_id": self.chunk.workspace_id,
            "external_id": f"user-{self.number:07d}",
            "email": self.email,
            "phone": self.phone,
            "chat": EMPTY,
            "attributes": {
                "first_name": self.first,
                "last_name": self.last,
                "country": region.country,
                "city": self.pick(region.cities),
                "age": min(18 + int(rng.expovariate(1 / 16)), 90),
                "plan": self.pick(PLANS),
                "signup_date": self.signed_up.date().isoformat(),
            },
            "timezone": self._timezone(),
            "locale": self.pick(region.locales) if rng.random() < 0.9 else None,
            "channels": channels,
            "preferences": EMPTY,
            "engagement": rollup,
            "engagement_score": total,
            "best_channel": best,
            "merged_into_id": None,
            "created_at": self.signed_up,
            "updated_at": self.chunk.now,
        }

    def _has(self, channel: str) -> bool:
        return bool(self.email if channel == "email" else self.phone)

    def _consent(self, rows: Rows) -> str | None:
        """Email marketing consent: mostly granted, some granted then revoked, some never asked.
        SMS: half the people with a phone granted it. Returns the email consent (or None)."""
        status = None
        if self.email and self.rng.random() < 0.95:
            status = "revoked" if self.rng.random() < 0.07 else "granted"
            rows.consent_record.append(self._consent_row("email", "granted", self.signed_up))
            if status == "revoked":
                rows.consent_record.append(self._consent_row("email", "revoked", self.ago(EVENT_DAYS)))
        if self.phone and self.rng.random() < 0.5:
            rows.consent_record.append(self._consent_row("sms", "granted", self.signed_up))
        return status

    def _consent_row(self, channel: str, status: str, at: dt.datetime) -> dict[str, Any]:
        source = "signup_form" if status == "granted" else "preference_center"
        return {
            "id": self.ids.next("cns"),
            "workspace_id": self.chunk.workspace_id,
            "profile_id": self.id,
            "channel": channel,
            "topic": "*",
            "status": status,
            "source": source,
            "actor": None,
            "ip": f"198.51.100.{1 + self.below(254)}",  # TEST-NET-2
            "user_agent": "ccm seed",
            "proof": PROOF,
            "recorded_at": at,
        }

    def _engagement(self, rows: Rows, consent: str | None) -> list[dict[str, Any]]:
        """The marketing emails the person got in the last 90 days — delivered, opened (a tenth of
        opens by a privacy proxy), clicked — and an unsubscription, bounce or complaint where the
        consent and suppression say so."""
        made: list[dict[str, Any]] = []
        if consent is None:
            return made
        for _ in range(self.below(5)):
            at = self.ago(EVENT_DAYS)
            made.append(self._engaged("delivered", at))
            if self.rng.random() < 0.45:
                machine = self.rng.random() < 0.1
                made.append(self._engaged("opened", at + dt.timedelta(minutes=self.rng.uniform(1, 600)), machine))
                if not machine and self.rng.random() < 0.3:
                    made.append(self._engaged("clicked", at + dt.timedelta(minutes=self.rng.uniform(601, 900))))
        if consent == "revoked":
            made.append(self._engaged("unsubscribed", self.ago(EVENT_DAYS)))
        elif self.email and self.rng.random() < 0.01:
            reason = "hard_bounce" if self.rng.random() < 0.7 else "complaint"
            made.append(self._engaged("bounced" if reason == "hard_bounce" else "complained", self.ago(EVENT_DAYS)))
            rows.suppression.append(self._suppression(reason))
        rows.engagement_event.extend(made)
        return made

    def _engaged(self, kind: str, at: dt.datetime, machine: bool = False) -> dict[str, Any]:
        return {
            "id": self.ids.next("evt"),
            "workspace_id": self.chunk.workspace_id,
            "profile_id": self.id,
            "message_id": None,
            "channel": "email",
            "kind": kind,
            "machine": machine,
            "source": "seed",
            "dedupe_key": None,
            "detail": EMPTY,
            "occurred_at": min(at, self.chunk.now),
            "recorded_at": self.chunk.now,
        }

    def _suppression(self, reason: str) -> dict[str, Any]:
        assert self.email is not None
        address = canonical("email", self.email)
        return {
            "id": self.ids.next("sup"),
            "workspace_id": self.chunk.workspace_id,
            "channel": "email",
            "address_hash": address_hash("email", address),
            "address": address,
            "reason": reason,
            "detail": "seeded",
            "created_at": self.chunk.now,
        }

    def _events(self, rows: Rows) -> None:
        """Page views and product views, carts and orders over the last 90 days."""
        for index in range(self.below(2 * self.chunk.events_per_profile + 1)):
            kind, name, properties = self._event_body()
            rows.event.append(
                {
                    "id": self.ids.next("evt"),
                    "workspace_id": self.chunk.workspace_id,
                    "received_at": self.chunk.now,
                    "profile_id": self.id,
                    "kind": kind,
                    "name": name,
                    "message_id": f"seed-{self.chunk.seed}-{self.number}-{index}",
                    "user_id": f"user-{self.number:07d}",
                    "anonymous_id": None,
                    "occurred_at": self.ago(EVENT_DAYS),
                    "properties": properties,
                    "context": CONTEXT,
                    "notes": NO_NOTES,
                }
            )

    def _event_body(self) -> tuple[str, str, dict[str, Any]]:
        draw = self.rng.random()
        if draw < 0.55:
            page = self.pick(PAGES)
            return "page", page, {"path": f"/{page.lower()}", "url": f"https://shop.example.com/{page.lower()}"}
        product = self.pick(PRODUCTS)
        price = round(self.rng.uniform(5, 250), 2)
        if draw < 0.80:
            return "track", "product_viewed", {"product_id": product, "price": price}
        if draw < 0.90:
            return "track", "added_to_cart", {"product_id": product, "price": price, "quantity": 1}
        items = 1 + self.below(4)
        order = f"ord-{self.number}-{self.below(10**6):06d}"
        return "track", "order_completed", {"order_id": order, "total": round(price * items, 2), "currency": "USD"}


def rollups_of(events: Sequence[dict[str, Any]], *, now: dt.datetime) -> tuple[dict[str, Any], float, str | None]:
    """The profile's engagement counters per channel, score and best channel, from its events."""
    rollup: dict[str, dict[str, Any]] = {}
    for event in events:
        counters = rollup.setdefault(event["channel"], {})
        name = f"machine_{event['kind']}" if event["machine"] else event["kind"]
        counters[name] = counters.get(name, 0) + 1
        if event["kind"] in ENGAGED and not event["machine"]:
            at = event["occurred_at"].isoformat()
            counters["last_engaged_at"] = max(counters.get("last_engaged_at", ""), at)
    triples = [(e["kind"], e["machine"], e["occurred_at"]) for e in events]
    total = score(triples, now=now)
    return rollup, total, "email" if events and total > 0 else None
