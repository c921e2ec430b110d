import time
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from avatars import jobs
from avatars.models import VideoJob
from tests.test_engine_speed import queue, engine_statements, kinds

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.jobs]

def test_probe(fake_heygen, monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name))
    fake_heygen.render_seconds = 0.01
    n = 20
    queue(n)
    with CaptureQueriesContext(connection) as c:
        jobs.submit_queued_jobs()
    s = engine_statements(c.captured_queries)
    print("\nSUBMIT", len(s) / n, kinds(s))
    time.sleep(0.1)
    from django.utils import timezone
    VideoJob.objects.update(next_check_at=timezone.now())
    with CaptureQueriesContext(connection) as c:
        print(jobs.check_due_renders())
    s = engine_statements(c.captured_queries)
    print("CHECK", len(s) / n, kinds(s))
    with CaptureQueriesContext(connection) as c:
        for job in VideoJob.objects.all():
            jobs.copy_video_job(job.pk)
    s = engine_statements(c.captured_queries)
    print("COPY", len(s) / n, kinds(s))
    for q in s[: len(s) // 5]:
        sql = q["sql"]; w = sql.find(" FROM "); print("Q", sql[:40], "...", sql[w:w+400] if sql.startswith("SELECT") else sql[:400])
    print(sent[:5])
