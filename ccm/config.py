"""Typed settings, read once from ``CCM_*`` environment variables.

Nothing else in CCM reads the environment: ``Settings.from_env()`` is called by the CLI, the WSGI
entry point and the worker entry point, and the result is passed down explicitly.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

BROKER_SCHEMES = ("redis", "rediss", "unix", "amqp", "amqps")


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message names the ``CCM_*`` variable and says what to do."""


class Settings(BaseSettings):
    """Everything CCM can be configured with; every field maps to ``CCM_<FIELD>``. Fields that
    may hold a password or key are left out of ``repr`` (and so out of logs and tracebacks)."""

    model_config = SettingsConfigDict(env_prefix="CCM_", extra="ignore", frozen=True)

    data_dir: Path = Path(".ccm")
    database_url: str | None = Field(None, repr=False)
    """SQLAlchemy URL; absent means a SQLite file under ``data_dir``."""
    redis_url: str | None = Field(None, repr=False)
    """Redis URL for rate limits, circuit breakers, the tracking-hit buffer and (unless
    ``broker_url`` says otherwise) the Dramatiq broker; absent means the in-process broker and worker."""
    redis_namespace: str = "ccm"
    broker_url: str | None = Field(None, repr=False)
    """``amqp://…`` (RabbitMQ) or ``redis://…`` for the Dramatiq broker; absent means ``redis_url``."""
    rabbitmq_queue_type: Literal["quorum", "classic"] = "quorum"
    """The type CCM declares its RabbitMQ queues with (fixed when a queue is first declared)."""
    broker_heartbeat_timeout: float = 15.0
    """Redis broker: seconds without a heartbeat after which a worker is dead and the relay puts
    the messages it had fetched back at the head of their queue (RabbitMQ does this by itself)."""
    worker_prefetch: int = Field(64, ge=1)
    """Messages each worker process fetches ahead per queue (Dramatiq's ``dramatiq_queue_prefetch``
    overrides it)."""
    smtp_url: str | None = Field(None, repr=False)
    """``smtp://user:pass@host:587?starttls=required`` or ``smtps://...``; absent means the local outbox."""
    smtp_timeout: float = 20.0
    inbound_domain: str | None = None
    """The domain whose mail ``ccm smtp-inbound`` receives (MX pointing at it); when set, emails
    carry a ``Reply-To: reply+…@<domain>`` so every reply lands in its thread."""
    local_outbox: str | None = None
    """Channels delivered into the local outbox when a workspace configures no provider for them
    and (for email) ``smtp_url`` is unset: ``email``, ``email,sms,chat`` or empty. Default: email on
    the embedded default, nothing otherwise (a production deployment never "delivers" into a table)."""

    secret_key: str | None = Field(None, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    mail_from: str = "CCM <noreply@localhost>"
    log_level: str = "INFO"
    max_request_bytes: int = 10_000_000
    """Larger request bodies are refused with 413 (an inbound email's raw bytes are the largest)."""

    in_process_worker_threads: int = 4
    io_uring: bool = True
    """An SMTP send's intent ``COMMIT`` and its final dots leave in one io_uring system call where
    the kernel allows it (ccm/db_commit.py); False: always the fallback, the dots right after."""
    worker_mmap_threshold: int = Field(32_768, ge=0)
    """Bytes: in ``dramatiq workers`` processes, an allocation this size or larger that a heap has
    no room for gets a mapping of its own, returned when freed, instead of growing the heap (0:
    glibc's default, which raises this threshold to the largest block freed, up to 32 MiB, so
    rendered bodies grow the threads' heaps and fragment them:
    RSS crept up by 5–15 MiB per process over 80,000 emails; bench/README.md)."""
    relay_interval: float = 1.0
    """Seconds between scans of the job outbox for work to (re)publish."""
    relay_grace: float = 30.0
    """A job not started this long after it was published is published again (and a started
    one ``claim_timeout + relay_grace`` after it started, if it has not finished by then)."""
    delivery_batch: int = Field(50, ge=1, le=500)
    """Messages accepted together (a batch send, a campaign) go to the workers this many per job,
    delivered with one claim, one intent and one outcome transaction (a single send goes alone)."""
    relay_backoff_max: float = 600.0
    """Each further publish of a job waits twice as long as the one before, up to this."""
    claim_timeout: float = 120.0
    """A delivery claim older than this belongs to a worker presumed dead. Must exceed the longest
    provider call (``smtp_timeout``) plus rendering."""
    retry_base: float = 10.0
    retry_max: float = 3600.0
    default_send_window: float = 24 * 3600.0
    """Seconds a message may spend retrying before it fails with ``deadline_exceeded``."""
    idempotency_ttl: float = 48 * 3600.0
    event_dedupe_days: int = Field(default=30, ge=1)
    """Days an ingested event's ``messageId`` is remembered: a retry within them is stored once."""
    event_retention_months: int = Field(default=0, ge=0)
    """On PostgreSQL, monthly event partitions older than this are dropped (0 keeps everything)."""
    trigger_fire_retention_days: int = Field(default=90, ge=1)
    """Days a finished trigger firing (released, cancelled, skipped) is kept for ``…/fires``; its
    message keeps ``triggered_by`` whatever happens to it."""
    ingest_max_in_flight: int = Field(default=16, ge=1)
    """Tracking requests one process stores at once; one more waits ``ingest_queue_wait`` seconds
    for a slot and is then answered 429 with ``Retry-After`` (the Segment clients retry it), rather
    than queueing until the clients time out."""
    ingest_queue_wait: float = Field(default=0.5, ge=0)
    campaign_chunk: int = Field(default=25_000, ge=1, le=99_999)
    """Profiles a campaign's fan-out writes per transaction (rows and checkpoint commit together)."""
    campaign_fanout_lanes: int = Field(default=2, ge=1, le=16)
    """Connections a campaign's fan-out writes its chunks on at once, on PostgreSQL (each chunk's
    work is in its backend: one core per lane). SQLite has one writer: one lane."""
    campaign_max_rate: float = Field(default=5_000.0, gt=0)
    """Messages per second a campaign without a throttle is released to delivery at, at most."""
    campaign_breaker_min: int = Field(default=100, ge=1)
    """Ended messages a campaign's breakers need before they judge its rates."""
    campaign_breaker_failed: float = Field(default=0.20, gt=0, le=1)
    """Share of failed messages among a campaign's recent ones that pauses it."""
    campaign_breaker_bounced: float = Field(default=0.10, gt=0, le=1)
    """Share of bounced messages among a campaign's recent ones that pauses it."""
    campaign_breaker_complaints: float = Field(default=0.005, gt=0, le=1)
    """Share of spam complaints among a campaign's recent messages that pauses it."""
    segment_count_budget_ms: int = Field(default=2000, ge=1, le=600_000)
    """Milliseconds a segment count may take; past them the count stops and the answer is an
    estimate marked ``approximate`` (see docs/segments.md), so a count never blocks the UI."""

    import_max_bytes: int = Field(default=200_000_000, ge=1)
    """A CSV file to import larger than this is refused with 413 (the API and ``ccm import``)."""
    import_chunk_rows: int = Field(default=1000, ge=1, le=100_000)
    """Rows of an import written per transaction: its unit of progress, of pause and of resumption."""

    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    """Hours a web app login lasts; after them the user logs in again."""
    login_max_failures: int = Field(default=5, ge=1)
    """Failed logins per email, and per IP (ten times as many), within ``login_window`` seconds after
    which further attempts are refused with 429 and ``Retry-After``."""
    login_window: float = Field(default=900.0, gt=0)

    render_timeout: float = 2.0
    render_max_chars: int = 1_000_000
    crash_at: str | None = Field(default=None, description="test hook: SIGKILL self at this point")

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _claims_outlive_provider_calls(self) -> Settings:
        # A claim that expires while its provider call is still running could be taken over and
        # sent again; the commit point stops that, but only a generous timeout keeps it rare.
        if self.claim_timeout <= self.smtp_timeout + self.render_timeout:
            raise ValueError("CCM_CLAIM_TIMEOUT must exceed CCM_SMTP_TIMEOUT + CCM_RENDER_TIMEOUT")
        return self

    @model_validator(mode="after")
    def _broker_is_known(self) -> Settings:
        scheme = (self.broker_url or "").partition("://")[0]
        if self.broker_url and scheme not in BROKER_SCHEMES:
            raise ValueError(f"CCM_BROKER_URL: scheme {scheme!r} is not one of {', '.join(BROKER_SCHEMES)}")
        if self.broker_url and self.redis_url is None:
            # Rate limits and the tracking-hit buffer are shared by every process through Redis.
            raise ValueError("CCM_BROKER_URL needs CCM_REDIS_URL too (rate limits, tracking hits)")
        return self

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The settings from ``CCM_*`` variables (and ``overrides``).

        Raises:
          SettingsError: a value is malformed or the values contradict each other; one line
            naming each variable.
        """
        try:
            return cls(**overrides)  # pydantic-settings reads CCM_* for every field not overridden
        except ValidationError as exc:
            raise SettingsError("; ".join(_describe(error) for error in exc.errors(include_url=False))) from None

    @property
    def public_url_given(self) -> bool:
        """Whether ``CCM_PUBLIC_URL`` was set, rather than left to its default."""
        return "public_url" in self.model_fields_set

    def listening_on(self, host: str, port: int) -> Settings:
        """These settings for ``ccm serve`` bound to ``host:port``. On the embedded default, where
        the worker that writes links runs in the same process, links follow the server unless
        ``CCM_PUBLIC_URL`` says otherwise; separate workers cannot know the port, so elsewhere
        ``CCM_PUBLIC_URL`` (or its default) stands."""
        if self.public_url_given or not self.embedded:
            return self
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"  # every interface: loopback is one of them
        elif host == "::":
            host = "::1"
        return self.model_copy(update={"public_url": f"http://{f'[{host}]' if ':' in host else host}:{port}"})

    @property
    def embedded(self) -> bool:
        """True when running on the embedded default (no Redis: in-process broker and worker)."""
        return self.redis_url is None

    @property
    def resolved_broker_url(self) -> str | None:
        """Where the Dramatiq broker is: ``broker_url``, else ``redis_url``; None in-process."""
        return self.broker_url or self.redis_url

    @property
    def local_outbox_channels(self) -> frozenset[str]:
        value = self.local_outbox if self.local_outbox is not None else ("email" if self.embedded else "")
        return frozenset(part.strip() for part in value.split(",") if part.strip())

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ccm.sqlite3').resolve()}"

    def resolved_secret_key(self) -> str:
        """The configured secret, or one kept under ``data_dir`` on the embedded default."""
        if self.secret_key:
            return self.secret_key
        if self.database_url and not self.database_url.startswith("sqlite"):
            raise SettingsError(
                "CCM_SECRET_KEY is not set; it is required when CCM_DATABASE_URL points at a "
                "server (make one with: openssl rand -hex 32)"
            )
        path = self.data_dir / "secret-key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def _describe(error: ErrorDetails) -> str:
    """``CCM_<FIELD>: <what is wrong>`` for one pydantic error (field-less ones carry the name)."""
    location = error.get("loc") or ()
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if not location:
        return message
    return f"CCM_{str(location[0]).upper()}: {message}"
