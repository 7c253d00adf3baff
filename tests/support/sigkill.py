"""A campaign run through ``dramatiq`` workers that are SIGKILLed again and again, and the tally
of what the SMTP server received: the scenario of the fault test and of its benchmark.

The workers run as ``groups`` independent ``dramatiq workers --processes 1`` (a supervisor that
loses a worker process shuts its others down, so one group is one killable process); every pause
(drawn from ``pause``) one group is SIGKILLed with everything it holds and started again, while
the others work on. After the last kill the groups run undisturbed until the campaign is done.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import Process, start_workers


@dataclass
class KillPlan:
    """How to kill: how many worker groups, their threads, the pause between kills, how many."""

    groups: int = 2
    threads: int = 2
    pause: tuple[float, float] = (1.0, 3.0)
    kills: int | None = None
    """Stop killing after this many (None: until ``done`` or the time budget)."""
    seconds: float = 600.0
    """Stop killing after this long, whatever ``kills`` says."""
    seed: int | None = None


@dataclass
class KillReport:
    kills: int = 0
    seconds: float = 0.0
    logs: list[Path] = field(default_factory=list)


class Workers:
    """The worker groups of one scenario, each restartable under a fresh log file."""

    def __init__(self, env: dict[str, str], log_dir: Path, threads: int) -> None:
        self.env, self.log_dir, self.threads = env, log_dir, threads
        self.running: list[Process] = []
        self.logs: list[Path] = []

    def start(self) -> Process:
        log = self.log_dir / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        return start_workers(self.env, log, threads=self.threads)

    def check(self) -> None:
        """Fail loudly when a group died by itself (bad settings, a crash): killing it proves nothing."""
        for worker in self.running:
            if not worker.alive():
                raise AssertionError(f"a worker group exited on its own:\n{worker.output()[-3000:]}")

    def stop(self) -> None:
        for worker in self.running:
            worker.stop()
        self.running = []


def kill_repeatedly(workers: Workers, plan: KillPlan, done: Callable[[], bool]) -> KillReport:
    """Start ``plan.groups`` groups and kill one of them at random, again and again, until
    ``done()``, ``plan.kills`` or ``plan.seconds``; leaves the groups running (``workers.stop()``)."""
    rng = random.Random(plan.seed)
    report = KillReport()
    started = time.monotonic()
    workers.running = [workers.start() for _ in range(plan.groups)]
    while not done() and (plan.kills is None or report.kills < plan.kills):
        time.sleep(rng.uniform(*plan.pause))
        if time.monotonic() - started > plan.seconds:
            break
        workers.check()
        slot = rng.randrange(plan.groups)
        workers.running[slot].kill()
        report.kills += 1
        workers.running[slot] = workers.start()
    report.seconds = time.monotonic() - started
    report.logs = list(workers.logs)
    return report


@dataclass(frozen=True)
class Tally:
    """What the SMTP server got, against what the database says was sent.

    ``lost`` are the sent messages that never arrived: each must be ``outcome_unknown`` (the
    worker died after recording its intent, before the final dot); ``unexpected`` arrived though
    the database does not call them sent; ``duplicates`` arrived more than once.
    """

    expected: int
    received: int
    duplicates: dict[str, int]
    lost: frozenset[str]
    unexpected: frozenset[str]
    unknown: int
    lost_not_unknown: frozenset[str]

    @property
    def summary(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "received": self.received,
            "duplicates": len(self.duplicates),
            "missing": len(self.lost),
            "missing_not_outcome_unknown": len(self.lost_not_unknown),
            "unexpected": len(self.unexpected),
            "outcome_unknown": self.unknown,
        }


def tally(sent: Iterable[str], unknown: Iterable[str], received: Iterable[str]) -> Tally:
    """Compare the addresses the database marks ``sent`` (``unknown``: those ``outcome_unknown``)
    with the recipients of every message the server received, one address per message."""
    counts = Counter(received)
    expected, unknown_set = set(sent), set(unknown)
    lost = expected - set(counts)
    return Tally(
        expected=len(expected),
        received=sum(counts.values()),
        duplicates={address: n for address, n in counts.items() if n > 1},
        lost=frozenset(lost),
        unexpected=frozenset(set(counts) - expected),
        unknown=len(unknown_set),
        lost_not_unknown=frozenset(lost - unknown_set),
    )
