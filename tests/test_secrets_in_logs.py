"""API keys, storage secrets and signed URL signatures never reach logs or error messages."""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from avatars.models import VideoJob
from tests.builders import make_topic
from tests.servers import TEST_SECRET_KEY

pytestmark = pytest.mark.django_db(transaction=True)
SECRETS = ("fake-heygen-key", TEST_SECRET_KEY, "Signature=")


def everything_logged(caplog) -> str:
    return "\n".join(
        f"{record.getMessage()} {record.__dict__} {record.exc_text or ''}"
        for record in caplog.records
    )


@pytest.mark.parametrize(
    "fault", ["storage_down", "render_failed", "truncated_body", "generate_500", "db_error"]
)
def test_failing_runs_log_no_secrets(fake_heygen, storage_link, caplog, fault):
    from tests.faults import failing_content_item_writes

    caplog.set_level(logging.DEBUG)
    if fault == "storage_down":
        storage_link.cut()
    elif fault != "db_error":
        fake_heygen.set_fault(fault, 10 if fault == "generate_500" else True)
    topic = make_topic()
    out, err = StringIO(), StringIO()
    try:
        if fault == "db_error":
            with failing_content_item_writes():
                call_command("generate_avatar_video", "--topic-id", str(topic.pk),
                             "--script", "Hi", stdout=out, stderr=err)  # fmt: skip
        else:
            call_command("generate_avatar_video", "--topic-id", str(topic.pk),
                         "--script", "Hi", stdout=out, stderr=err)  # fmt: skip
    except CommandError as error:
        assert not any(secret in str(error) for secret in SECRETS)
    logged = everything_logged(caplog) + err.getvalue()
    for secret in SECRETS:
        assert secret not in logged, f"{secret!r} leaked into the logs ({fault})"
    for job in VideoJob.objects.all():
        assert not any(secret in job.last_error for secret in SECRETS)
