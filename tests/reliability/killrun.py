"""`python -m tests.reliability.killrun ARGS...`: `certmon ARGS...` with a step counter, for crash tests of the CLI.

The environment says what to do (`tests.reliability.killpoints` counts the steps from start-up):

* `KILLPOINT_STEP=k`: send the process `KILLPOINT_SIGNAL` (`KILL`, the default, or `TERM`) before step k;
* `KILLPOINT_REPORT=file`: only count, and write the count and the journal's steps to `file` (JSON) at exit;
* `KILLPOINT_CONTROL=fd`: count, and obey lines on stdin: `now` writes the step count to descriptor
  `fd`, `kill N` kills N steps from now (for a long-running `certmon run`).

Nothing in certmon knows: this module installs the hooks and then runs `daemon` as `__main__`.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import threading
from dataclasses import asdict

from tests.reliability.killpoints import StepCounter


def _obey(counter: StepCounter, reply_fd: int) -> None:
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "now":
            os.write(reply_fd, f"{counter.now()}\n".encode())
        elif command == "kill":
            counter.kill_in(int(value))


def main() -> None:
    """Install the counter the environment asks for, then run the command line."""
    kill_signal = signal.SIGTERM if os.environ.get("KILLPOINT_SIGNAL") == "TERM" else signal.SIGKILL
    counter = StepCounter(kill_signal=kill_signal)
    counter.profile()
    step = os.environ.get("KILLPOINT_STEP")
    report = os.environ.get("KILLPOINT_REPORT")
    control = os.environ.get("KILLPOINT_CONTROL")
    counter.arm(int(step) if step else None)
    if report:

        def write_report() -> None:
            counted = asdict(counter.disarm())
            with open(report, "w", encoding="utf-8") as handle:
                json.dump(counted, handle)

        atexit.register(write_report)
    if control:
        threading.Thread(target=_obey, args=(counter, int(control)), daemon=True, name="killpoint").start()
    sys.argv = ["certmon", *sys.argv[1:]]
    runpy.run_module("daemon", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
