"""pytest's log capture, entered while another thread creates loggers (as the workers' consumer
threads do), must not fail the test it wraps (tests/support/logger_registry.py)."""

from __future__ import annotations

import logging
import sys
import threading

from _pytest.logging import LogCaptureHandler, catching_logs


def test_log_capture_survives_loggers_created_by_another_thread():
    def create_loggers() -> None:
        for n in range(20_000):
            logging.getLogger(f"ccm.test.registry.{n}")

    thread = threading.Thread(target=create_loggers)
    usual = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often, so the two threads interleave
    thread.start()
    entered = failures = 0
    try:
        while thread.is_alive() or not entered:
            entered += 1
            try:
                with catching_logs(LogCaptureHandler(), level=logging.DEBUG):
                    pass
            except RuntimeError:
                failures += 1
    finally:
        thread.join()
        sys.setswitchinterval(usual)
        manager = logging.root.manager
        with logging._lock:  # type: ignore[attr-defined]
            for name in [n for n in manager.loggerDict if n.startswith("ccm.test.registry.")]:
                del manager.loggerDict[name]
    assert (failures, entered > 10) == (0, True)
