"""A `manage.py` command on a host whose clock runs ahead (or behind), for `make chaos`.

python -m benchmarks.skewed_engine SECONDS run_video_engine --tick 0.3

Every wall-clock reading of this process is moved by SECONDS: `time.time` (and what is built
on it) and `django.utils.timezone.now`, patched before Django loads, so every module sees the
moved clock. Monotonic time (ticks, timeouts) is untouched, as on a host whose clock was set
wrong. The engine compares leases on the database's clock, so nothing should change.
"""

import sys
import time
from datetime import UTC, datetime

_real_time = time.time


def main() -> None:
    offset = float(sys.argv[1])
    time.time = lambda: _real_time() + offset

    from django.utils import timezone

    timezone.now = lambda: datetime.fromtimestamp(time.time(), UTC)

    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[2:]])


if __name__ == "__main__":
    main()
