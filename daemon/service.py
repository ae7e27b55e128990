"""`certmon run` as a service: the daemon until a stop signal, and a configuration reload on SIGHUP.

A reload re-reads the configuration (file, environment, flags); when it is invalid, or the
daemon cannot start with it (a port in use), the running configuration stays, with one log
line naming why. The running daemon stops within `stop_timeout_seconds` (past that the process
exits 1 and the service manager starts it again with the new configuration), and findings
already logged as raised are not logged again. Windows has no SIGHUP: restart the service (deploy/windows/README.md).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from daemon.app import Daemon
from daemon.malloctune import tune_malloc
from daemon.settings import ConfigError, Settings
from daemon.stopping import stop_within

log = logging.getLogger("certmon.service")

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGBREAK")


class Service:
    """Runs one Daemon at a time; SIGHUP swaps it for one built from the re-read configuration."""

    def __init__(self, load: Callable[[], Settings], settings: Settings | None = None) -> None:
        self._load = load
        self._settings = settings
        self._wake = threading.Event()
        self._stop = False
        self._reload = False
        self.reloads = 0

    def request_stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Signal handler: stop after the current work."""
        log.info("stopping (signal %s)", signum)
        self._stop = True
        self._wake.set()

    def request_reload(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Signal handler: re-read the configuration."""
        self._reload = True
        self._wake.set()

    def run(self) -> None:
        """Start the daemon and serve until a stop signal, reloading on SIGHUP."""
        settings = self._settings or self._load()
        # Handlers first: a stop signal while the daemon starts is honoured once it has started.
        for name in STOP_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self.request_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self.request_reload)
        tune_malloc()
        daemon = Daemon(settings)
        try:
            daemon.start()
            while not self._stop:
                # A timeout, not a bare wait: on Windows a blocked wait never lets Ctrl+C's handler run.
                self._wake.wait(1.0)
                self._wake.clear()
                if self._reload and not self._stop:
                    self._reload = False
                    daemon, settings = self._reloaded(daemon, settings)
        finally:
            # Bounded whatever a peer does: past stop_timeout_seconds the process exits (daemon/stopping.py).
            stop_within(daemon.stop, settings.stop_timeout_seconds)

    def _reloaded(self, daemon: Daemon, settings: Settings) -> tuple[Daemon, Settings]:
        try:
            new = self._load()
        except ConfigError as err:
            log.error("configuration reload refused, keeping the running configuration: %s", err)
            return daemon, settings
        if not _stopped_within(daemon, settings.stop_timeout_seconds):
            # A worker that ignores its deadline holds the old daemon: exit non-zero, and the service
            # manager (Restart=on-failure) starts certmon again with the new configuration.
            log.error(
                "configuration reload: the running daemon did not stop within %.0f s; exiting so the service "
                "manager restarts certmon with the new configuration",
                settings.stop_timeout_seconds,
            )
            logging.shutdown()
            os._exit(1)
        try:
            replacement = Daemon(new)
            replacement.log_findings(previous=daemon)
            replacement.start()
        except (ConfigError, OSError) as err:
            log.error("configuration reload failed to start, back to the running configuration: %s", err)
            previous, daemon = daemon, Daemon(settings)
            daemon.log_findings(previous=previous)
            daemon.start()
            return daemon, settings
        self.reloads += 1
        log.info("configuration reloaded (environment %s)", new.environment)
        return replacement, new


def _stopped_within(daemon: Daemon, seconds: float) -> bool:
    """Stop the daemon in a helper thread; whether it stopped within `seconds`."""
    helper = threading.Thread(target=daemon.stop, name="certmon-reload-stop", daemon=True)
    helper.start()
    helper.join(seconds)
    return not helper.is_alive()
