"""A topic page that holds a course: no second render from the studio (no Regenerate while a
job runs; Cancel frees a queued job's slot), 50 lessons on one page at a fixed query count,
one player opened on demand, the batch summary."""

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from avatars import leases
from avatars import services as generation
from avatars.models import VideoJob
from studio.cards import batch_summary
from tests.builders import log_in_author, make_stored_item, make_topic
from topics.models import ContentItem

pytestmark = pytest.mark.django_db

AUTHOR = ["view_topic", "view_contentitem", "add_contentitem", "regenerate_contentitem",
          "change_contentitem", "delete_contentitem"]  # fmt: skip


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


@pytest.fixture
def author(client):
    return log_in_author(client, AUTHOR)


def card_of(page: str, item: ContentItem) -> str:
    return page.split(f'id="item-{item.pk}"')[1].split("</article>")[0]


def test_no_regenerate_while_queued_and_the_view_refuses_it(client, author):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_nr_1.mp4", 10)
    generation.avatar_video_regenerate(content_item=item)
    page = client.get(f"/topics/{item.topic_id}/").content.decode()
    card = card_of(page, item)
    assert 'data-action="regenerate"' not in card and 'data-action="cancel"' in card
    url = f"/topics/{item.topic_id}/videos/{item.pk}/regenerate/"
    for response in (client.get(url, follow=True), client.post(url, follow=True)):
        assert "is being generated already" in response.content.decode()
    assert VideoJob.objects.filter(content_item=item).count() == 1


def test_cancel_frees_a_queued_jobs_slot_without_a_render(client, author):
    topic = make_topic()
    first, second = generation.avatar_videos_generate(topic=topic, scripts=["One.", "Two."])
    url = f"/topics/{topic.pk}/videos/{first.content_item_id}/cancel/"
    response = client.post(url, follow=True)
    page = response.content.decode()
    assert "“One.” cancelled before it rendered; no credit was used." in page
    first.refresh_from_db()
    assert first.state == "failed" and first.last_error == "Cancelled by author"
    assert first.submission_title == "" and first.provider_video_id == ""
    assert ContentItem.objects.get(pk=first.content_item_id).status == "failed"
    card = card_of(page, first.content_item)
    assert "Cancelled by author before it rendered" in card and "video-status cancelled" in card
    assert 'data-action="regenerate"' in card  # offered again once nothing runs
    # The next job is first in line now.
    progress = client.get(f"/avatars/jobs/{second.pk}/progress").json()
    assert progress["queue_position"] == 1


def test_a_job_already_claimed_or_rendering_is_not_cancelled(client, author):
    topic = make_topic()
    (job,) = generation.avatar_videos_generate(topic=topic, scripts=["One."])
    VideoJob.objects.filter(pk=job.pk).update(state="rendering", provider_video_id="v1")
    assert leases.cancel_queued(job.pk, cancelled_by="author") is None
    response = client.post(f"/topics/{topic.pk}/videos/{job.content_item_id}/cancel/",
                           follow=True)  # fmt: skip
    assert "has started rendering and cannot be cancelled" in response.content.decode()
    job.refresh_from_db()
    assert job.state == "rendering"
    (other,) = generation.avatar_videos_generate(topic=topic, scripts=["Two."])
    VideoJob.objects.filter(pk=other.pk).update(claimed_by="host:1:abc",
                                                lease_expires_at=leases.db_now().replace(
                                                    year=2100))  # fmt: skip
    assert leases.cancel_queued(other.pk, cancelled_by="author") is None


def test_cancel_needs_a_permission_to_generate(client):
    user = User.objects.create_user("viewer", password="pw-12345-long")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_contentitem"]))
    client.force_login(user)
    topic = make_topic()
    (job,) = generation.avatar_videos_generate(topic=topic, scripts=["One."])
    url = f"/topics/{topic.pk}/videos/{job.content_item_id}/cancel/"
    assert client.post(url).status_code == 403
    job.refresh_from_db()
    assert job.state == "queued"


def test_fifty_lessons_on_one_page_at_a_fixed_query_count(client, author):
    topic = make_topic()

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/topics/{topic.pk}/")
        assert response.status_code == 200
        return len(queries)

    make_stored_item(topic, "avatar_videos/avatar_fq_0.mp4", 1)
    generation.avatar_videos_generate(topic=topic, scripts=["Queued one."])
    few = count()
    for n in range(1, 44):
        make_stored_item(topic, f"avatar_videos/avatar_fq_{n}.mp4", 1)
    generation.avatar_videos_generate(topic=topic, scripts=[f"Queued {n}." for n in range(5)])
    assert ContentItem.objects.filter(topic=topic).count() == 50
    assert count() == few
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert page.count('<article class="card item lesson') == 50 and "Page 1 of" not in page
    assert "<video" not in page and page.count('data-action="play"') == 44


def test_one_player_opens_on_demand(client, author):
    topic = make_topic()
    first = make_stored_item(topic, "avatar_videos/avatar_pl_1.mp4", 1)
    make_stored_item(topic, "avatar_videos/avatar_pl_2.mp4", 1)
    page = client.get(f"/topics/{topic.pk}/?play={first.pk}").content.decode()
    assert page.count("<video") == 1 and "<video" in card_of(page, first)


def test_the_batch_lands_on_its_page_with_a_summary_in_words(client, author):
    topic = make_topic()
    jobs = generation.avatar_videos_generate(
        topic=topic, scripts=[f"Lesson {n}." for n in range(12)]
    )
    items = [job.content_item for job in jobs]
    VideoJob.objects.filter(pk__in=[job.pk for job in jobs[:7]]).update(state="stored")
    ContentItem.objects.filter(pk__in=[item.pk for item in items[:7]]).update(
        storage_path="", status="ready"
    )
    for n, item in enumerate(items[:7]):
        ContentItem.objects.filter(pk=item.pk).update(storage_path=f"avatar_videos/b_{n}.mp4")
    VideoJob.objects.filter(pk=jobs[7].pk).update(state="failed", last_error="Render refused")
    ContentItem.objects.filter(pk=items[7].pk).update(status="failed")
    summary = batch_summary(topic.pk, items[0].pk, items[-1].pk)
    assert summary == {"text": "7 of 12 stored, 1 failed, 4 in progress", "done": False,
                       "total": 12}  # fmt: skip
    batch = f"{items[0].pk}-{items[-1].pk}"
    page = client.get(f"/topics/{topic.pk}/?batch={batch}").content.decode()
    assert "7 of 12 stored, 1 failed, 4 in progress" in page
    assert client.get(f"/topics/{topic.pk}/batch/?batch={batch}").json()["total"] == 12
    assert client.get(f"/topics/{topic.pk}/batch/?batch=x").status_code == 400


def test_a_video_saved_while_the_summary_reads_never_ends_the_batch_early(author):
    """A save commits between the summary's two reads (items, then jobs): the batch still
    reads as running (the next poll sees it stored), never as done with that video
    "interrupted" (the page would stop polling at "1 of 2 stored, 1 failed")."""
    topic = make_topic()
    jobs = generation.avatar_videos_generate(topic=topic, scripts=["One.", "Two."])
    items = [job.content_item for job in jobs]
    VideoJob.objects.filter(pk=jobs[0].pk).update(state="stored")
    ContentItem.objects.filter(pk=items[0].pk).update(storage_path="avatar_videos/s_0.mp4",
                                                      status="ready")  # fmt: skip
    VideoJob.objects.filter(pk=jobs[1].pk).update(state="uploading")
    reads = []

    def save_after_the_first_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        reads.append(sql)
        if len(reads) == 1:  # the other video's save commits now
            VideoJob.objects.filter(pk=jobs[1].pk).update(state="stored")
            ContentItem.objects.filter(pk=items[1].pk).update(
                storage_path="avatar_videos/s_1.mp4", status="ready")  # fmt: skip
        return result

    with connection.execute_wrapper(save_after_the_first_read):
        summary = batch_summary(topic.pk, items[0].pk, items[-1].pk)
    assert summary["done"] is False or summary["text"] == "2 of 2 stored", summary
    assert "failed" not in summary["text"]
    assert batch_summary(topic.pk, items[0].pk, items[-1].pk)["text"] == "2 of 2 stored"


def test_form_errors_are_summarised_at_the_top_of_the_form(client, author):
    topic = make_topic()
    response = client.post(f"/topics/{topic.pk}/videos/", {"script": "", "language": "e n"})
    page = response.content.decode()
    assert response.status_code == 400
    summary = page.split('id="form-errors"')[1].split("</div>")[0]
    assert "autofocus" in page.split('id="form-errors"')[1].split(">")[0]
    assert 'href="#id_language"' in summary and 'href="#id_script"' in summary
    assert page.index('id="form-errors"') < page.index('id="id_script"')


def test_the_pickers_come_from_the_providers_lists_and_batches_use_the_topics_defaults(
    client, author, fake_heygen
):
    from django.core.cache import cache

    from avatars.providers.heygen import HeyGenClient

    cache.clear()
    client.force_login(author)
    author.user_permissions.add(*Permission.objects.filter(codename__in=["change_topic"]))
    assert [a.name for a in HeyGenClient().list_avatars()] == ["Daisy", "Tyler", "Anna"]
    topic = make_topic("שיעור", language="he")
    page = client.get(f"/topics/{topic.pk}/edit/").content.decode()
    assert "/previews/Tyler-incasualsuit-20220721.svg" in page  # preview images
    voices = page.split('data-role="voice-picker"')[1]
    assert "Avri" in voices and "Hila" in voices and "Rachel" not in voices  # Hebrew only
    client.get(f"/topics/{topic.pk}/edit/")
    assert fake_heygen.requests_seen.count("GET /v2/voices") == 1  # cached
    response = client.post(f"/topics/{topic.pk}/edit/", {
        "title": "שיעור", "language": "he", "default_avatar_id": "Tyler-incasualsuit-20220721",
        "default_voice_id": "he-IL-hila"})  # fmt: skip
    assert response.status_code == 302
    topic.refresh_from_db()
    assert (topic.default_avatar_id, topic.default_voice_id) == (
        "Tyler-incasualsuit-20220721", "he-IL-hila")  # fmt: skip
    jobs = generation.avatar_videos_generate(topic=topic, scripts=["שלום.", "להתראות."])
    assert {(job.avatar_id, job.voice_id) for job in jobs} == {
        ("Tyler-incasualsuit-20220721", "he-IL-hila")}  # fmt: skip
    (named,) = generation.avatar_videos_generate(
        topic=topic, scripts=["אחד."], voice_id="he-IL-avri"
    )
    assert named.voice_id == "he-IL-avri"


def test_the_offline_renderer_offers_its_own_small_lists(client, author):
    author.user_permissions.add(*Permission.objects.filter(codename__in=["add_topic"]))
    page = client.get("/topics/new/").content.decode()
    assert "Title card (offline renderer)" in page and "Tone (offline renderer)" in page


def test_times_read_as_minutes_ago_with_the_full_date_on_hover(client, author):
    from datetime import timedelta

    from django.utils import timezone

    from studio.status import format_ago
    from studio.templatetags.studio_time import ago

    now = timezone.now()
    assert format_ago(now - timedelta(seconds=20), now) == "just now"
    assert format_ago(now - timedelta(minutes=2, seconds=5), now) == "2 min ago"
    assert format_ago(now - timedelta(hours=3), now) == "3 h ago"
    assert format_ago(now - timedelta(days=1, hours=2), now) == "1 day ago"
    markup = ago(now - timedelta(minutes=2))
    assert markup.startswith('<time datetime="') and ">2 min ago</time>" in markup
    assert 'title="' in markup and str(now.year) in markup.split('title="')[1]
    make_topic("Cells")
    assert "just now</time>" in client.get("/").content.decode()
