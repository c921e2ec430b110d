"""django-q2's task results: the monitor saves them without pruning (its own pruning locked
every saved success for each result), and a schedule keeps the newest Q_SUCCESS_KEPT."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Failure, Schedule, Success
from django_q.monitor import save_task

from avatars.task_results import prune_task_results

pytestmark = pytest.mark.django_db


def result(ended_at, *, success: bool = True) -> dict:
    """A task package as a worker hands it to the monitor."""
    return {
        "id": uuid.uuid4().hex, "name": f"copy-{uuid.uuid4().hex[:8]}",
        "func": "avatars.jobs.copy_video_job", "args": (1,), "kwargs": {}, "group": None,
        "cluster": "test", "started": ended_at - timedelta(seconds=1), "stopped": ended_at,
        "result": "stored" if success else "Traceback: boom", "success": success,
        "attempt_count": 1,
        "sync": True,  # the monitor would otherwise close the test's database connection
    }  # fmt: skip


def test_the_monitor_saves_results_unpruned_and_the_schedule_keeps_the_newest(settings):
    assert Conf.SAVE_LIMIT == 0  # the project's Q_CLUSTER: django-q2 never prunes
    settings.Q_SUCCESS_KEPT = 5
    start = timezone.now() - timedelta(hours=1)
    broker = get_broker()
    for n in range(8):
        save_task(result(start + timedelta(seconds=n)), broker)
    for n in range(2):
        save_task(result(start + timedelta(seconds=n), success=False), broker)
    assert Success.objects.count() == 8  # django-q2's monitor pruned nothing

    assert prune_task_results() == 3
    kept = list(Success.objects.order_by("stopped").values_list("stopped", flat=True))
    assert kept == [start + timedelta(seconds=n) for n in range(3, 8)]  # the newest five
    assert Failure.objects.count() == 2  # failures stay for an operator to read
    assert prune_task_results() == 0  # nothing beyond the newest five any more


def test_results_that_ended_together_beyond_the_kept_ones_all_go(settings):
    settings.Q_SUCCESS_KEPT = 2
    now = timezone.now()
    broker = get_broker()
    for ended_at in (now, now - timedelta(seconds=1), now - timedelta(seconds=2),
                     now - timedelta(seconds=2)):  # fmt: skip
        save_task(result(ended_at), broker)
    assert prune_task_results() == 2
    assert Success.objects.count() == 2


def test_the_prune_runs_every_minute_from_django_q2s_schedule():
    schedule = Schedule.objects.get(name="avatars: prune task results")
    assert schedule.func == "avatars.task_results.prune_task_results"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
