"""CCM processes started the way an operator starts them: ``dramatiq workers``, ``ccm serve``,
and a private ``redis-server`` that a test may stop and start again."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ccm_env(**settings: Any) -> dict[str, str]:
    """The environment of a child process: this one's, minus CCM_*, plus ``settings`` as CCM_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    env.update({f"CCM_{name.upper()}": str(value) for name, value in settings.items() if value is not None})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """A child process in its own process group, its output kept in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        # Open for the child's whole life, not one block: kill() and stop() close it.
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_exit(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown hooks run."""
        self._signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, as an orchestrator would, then SIGKILL if it does not go."""
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._log.close()

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass


def start_workers(env: dict[str, str], log_path: Path, *, threads: int = 2) -> Process:
    args = [sys.executable, "-m", "dramatiq", "workers", "--processes", "1", "--threads", str(threads)]
    return Process(args, env, log_path)


class ServeProcess(Process):
    """``ccm serve`` on a free port; ``url`` and ``key`` are read from its banner."""

    def __init__(self, env: dict[str, str], log_path: Path, *, timeout: float = 30) -> None:
        super().__init__([sys.executable, "-m", "ccm", "serve", "--port", str(free_port())], env, log_path)
        deadline = time.monotonic() + timeout
        while not re.search(r"API key for workspace 'default': (\S+)", self.output()):
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"ccm serve did not start:\n{self.output()}")
            time.sleep(0.1)
        self.url = re.search(r"listening on (http://\S+)", self.output()).group(1)  # type: ignore[union-attr]
        self.key = re.search(r"API key for workspace 'default': (\S+)", self.output()).group(1)  # type: ignore[union-attr]


class RedisServer:
    """A throwaway redis-server on a free port (nothing on disk), restartable on the same port."""

    def __init__(self, policy: str = "noeviction") -> None:
        self.port = free_port()
        self.policy = policy
        self.popen: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.popen = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                self.policy,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait(timeout=10)
            self.popen = None
