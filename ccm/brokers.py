"""The Dramatiq broker of a process: RabbitMQ, Redis or the in-process stub, built from settings;
its health; and, on Redis, putting back what a dead worker had fetched.

The broker is only transport (the job outbox in :mod:`ccm.jobs` is the record of what must run),
but how fast it gives back a dead worker's messages is part of the recovery bound:

- RabbitMQ requeues a consumer's unacknowledged messages as soon as its connection drops;
- Dramatiq's Redis broker keeps them in the dead worker's "ack set" until a *maintenance* pass,
  which Dramatiq runs on a random 0.1 % of its commands. :func:`requeue_dead_workers` runs that
  pass on every relay tick instead: a worker silent for ``CCM_BROKER_HEARTBEAT_TIMEOUT`` is dead,
  and its messages go back to the head of their queues.
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
import dramatiq.errors
import pika
import pika.exceptions
import redis
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, xq_name

if TYPE_CHECKING:
    from ccm.config import Settings

log = logging.getLogger(__name__)

QUEUES = ("deliveries", "webhooks", "maintenance", "campaigns")

BROKER_ERRORS: tuple[type[Exception], ...] = (
    redis.RedisError,
    OSError,
    dramatiq.errors.BrokerError,
    pika.exceptions.AMQPError,
)
"""What a publish raises when the broker is down or refused the message."""

AMQP_DEFAULTS = {"socket_timeout": 2.0, "stack_timeout": 5.0, "blocked_connection_timeout": 10.0, "heartbeat": 15}
"""pika connection parameters CCM sets unless the URL's query names them: an unreachable RabbitMQ
fails a publish in seconds (the job stays due for the relay); a RabbitMQ that blocks publishers
(memory or disk alarm) drops the connection after 10 s instead of hanging the caller; and a worker
host that vanishes without closing its connections is noticed within two 15 s heartbeats, when
RabbitMQ hands its unacknowledged messages to other workers."""


def connect_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=10.0, health_check_interval=15)


def build_broker(settings: Settings, redis_client: redis.Redis | None = None) -> dramatiq.Broker:
    """The broker ``CCM_BROKER_URL`` (else ``CCM_REDIS_URL``) names, with CCM's queues declared;
    the in-process stub broker when neither is set. ``redis_client`` is reused when the broker is
    the Redis of ``CCM_REDIS_URL``."""
    url = settings.resolved_broker_url
    broker: dramatiq.Broker
    if url is None:
        broker = StubBroker()
    elif url.startswith("amqp"):
        broker = CcmRabbitmqBroker(url=url, queue_type=settings.rabbitmq_queue_type)
    else:
        shared = redis_client is not None and url == settings.redis_url
        broker = RedisBroker(
            client=redis_client if shared else connect_redis(url),
            namespace=settings.redis_namespace,
            heartbeat_timeout=int(settings.broker_heartbeat_timeout * 1000),
        )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


class CcmRabbitmqBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with publisher confirms (a publish RabbitMQ did not take raises,
    and the job is left to the relay), bounded connection timeouts, and queues of one type:
    ``quorum`` (replicated across a cluster) or ``classic``."""

    def __init__(self, *, url: str, queue_type: str) -> None:
        super().__init__(url=url, confirm_delivery=True)
        self.queue_type = queue_type
        given = parse_qs(urlsplit(url).query)
        for parameters in self.parameters if isinstance(self.parameters, list) else [self.parameters]:
            for name, value in AMQP_DEFAULTS.items():
                if name not in given:
                    setattr(parameters, name, value)

    def _typed(self, arguments: dict[str, Any]) -> dict[str, Any]:
        # Classic is RabbitMQ's default: leaving the argument out keeps queues declared before it matching.
        return {**arguments, "x-queue-type": self.queue_type} if self.queue_type != "classic" else arguments

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return self._typed(super()._build_queue_arguments(queue_name))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(
            queue=xq_name(queue_name), durable=True, arguments=self._typed({"x-message-ttl": DEAD_MESSAGE_TTL})
        )


def check_redis_policy(target: redis.Redis | dramatiq.Broker | None) -> None:
    """Refuse a Redis that may evict keys: an evicted queue entry is a lost message until the
    relay notices, an evicted ack set a duplicate run, an evicted hit buffer lost engagement.
    ``target`` is a Redis client or a broker (anything but a Redis broker is not checked), or
    None when there is no Redis."""
    client = target.client if isinstance(target, RedisBroker) else target
    if not isinstance(client, redis.Redis):
        return
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:  # CONFIG disabled (managed Redis): we cannot tell
        log.warning("cannot read Redis maxmemory-policy; make sure it is 'noeviction'")
        return
    if policy != "noeviction":
        raise RuntimeError(f"Redis maxmemory-policy is {policy!r}; CCM needs 'noeviction'")


def ping(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers. A RabbitMQ connection the server closed while idle is
    opened again once before the broker counts as down."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
    elif isinstance(broker, RabbitmqBroker):
        try:
            broker.connection.channel().close()
        except BROKER_ERRORS:
            del broker.connection
            broker.connection.channel().close()


# Dramatiq's Redis layout (dramatiq/brokers/redis/dispatch.lua): a worker's fetched, unacked
# message ids sit in "<ns>:__acks__.<worker id>.<queue>", the ids waiting in the list
# "<ns>:<queue>", their bodies in the hash "<ns>:<queue>.msgs", heartbeats in "<ns>:__heartbeats__".
_REQUEUE_DEAD = """
local ns, now, timeout, me = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local heartbeats = ns .. ":__heartbeats__"
redis.call("zadd", heartbeats, now, me)
local moved = 0
for _, worker in ipairs(redis.call("zrangebyscore", heartbeats, 0, now - timeout)) do
  for i = 4, #ARGV do
    local queue = ns .. ":" .. ARGV[i]
    local acks = ns .. ":__acks__." .. worker .. "." .. ARGV[i]
    for _, id in ipairs(redis.call("smembers", acks)) do
      if redis.call("hexists", queue .. ".msgs", id) == 1 then
        redis.call("lpush", queue, id)
        moved = moved + 1
      end
    end
    redis.call("del", acks)
  end
  redis.call("zrem", heartbeats, worker)
end
return moved
"""


def requeue_dead_workers(broker: dramatiq.Broker) -> int:
    """Redis broker: heartbeat for this process, and put every message a worker silent for the
    heartbeat timeout had fetched back at the head of its queue. Returns how many moved; other
    brokers need nothing (0)."""
    if not isinstance(broker, RedisBroker):
        return 0
    queues = sorted(broker.get_declared_queues() | broker.delay_queues)
    script = broker.client.register_script(_REQUEUE_DEAD)  # only hashes the text; EVALSHA loads it once
    moved = int(
        script(keys=[broker.namespace], args=[current_millis(), broker.heartbeat_timeout, broker.broker_id, *queues])
    )
    if moved:
        log.warning(
            "requeued %d messages fetched by workers that stopped (silent for %d ms)", moved, broker.heartbeat_timeout
        )
    return moved


def enqueue_many(broker: dramatiq.Broker, messages: list[dramatiq.Message]) -> None:
    """Enqueue every message; on Redis in one pipelined round trip. Dramatiq has no batch enqueue:
    its Redis broker runs one Lua script per message, which a copy of the broker queues on a
    pipeline here instead of sending each on its own."""
    if not isinstance(broker, RedisBroker):
        for message in messages:
            broker.enqueue(message)
        return
    with broker.client.pipeline(transaction=False) as pipe:
        pipelined = copy.copy(broker)
        pipelined.scripts = {**broker.scripts, "dispatch": functools.partial(broker.scripts["dispatch"], client=pipe)}
        for message in messages:
            pipelined.enqueue(message)
        pipe.execute()
