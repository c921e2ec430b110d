"""Downloads are named after the video's title: `Content-Disposition: attachment` with an
ASCII fallback and the UTF-8 name (RFC 6266 / 5987), from the S3 server over HTTP (presigned
`response-content-disposition`, public and private buckets) and from local storage."""

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile

from tests.builders import make_stored_item, make_topic
from tests.conftest import BUCKET
from tests.servers import supabase_storage_settings
from topics.services import content_item_rename
from videostore.storage import attachment_disposition, download_file_name

pytestmark = pytest.mark.django_db
KEY = "avatar_videos/avatar_dn_1.mp4"
BODY = b"\x00\x00\x00\x18ftypmp42 not really a video"
HEBREW = "שיעור ראשון: מבוא"
HEBREW_UTF8 = (
    "%D7%A9%D7%99%D7%A2%D7%95%D7%A8%20%D7%A8%D7%90%D7%A9%D7%95%D7%9F%20%D7%9E%D7%91%D7%95%D7%90"
)
EXPECTED = {
    "Intro to cells": (
        "attachment; filename=\"Intro to cells.mp4\"; filename*=UTF-8''Intro%20to%20cells.mp4"
    ),
    HEBREW: f"attachment; filename=\"video.mp4\"; filename*=UTF-8''{HEBREW_UTF8}.mp4",
}


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("viewer", password="pw-12345-long")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_contentitem"]))
    client.force_login(user)
    return user


@pytest.mark.parametrize(
    "title, file_name",
    [
        ("Intro to cells", "Intro to cells.mp4"),
        (HEBREW, "שיעור ראשון מבוא.mp4"),
        ('a/b\\c:d*e?f"g<h>i|j', "a b c d e f g h i j.mp4"),
        ("...", "video.mp4"),
        ("x" * 200, "x" * 120 + ".mp4"),
    ],
)
def test_the_download_name_is_the_title_without_what_file_systems_refuse(title, file_name):
    assert download_file_name(title) == file_name


def test_the_header_has_an_ascii_fallback_and_the_utf8_name():
    assert attachment_disposition("Intro to cells.mp4") == EXPECTED["Intro to cells"]
    assert attachment_disposition(download_file_name(HEBREW)) == EXPECTED[HEBREW]
    mixed = attachment_disposition("Café 100% «bio».mp4")
    assert mixed == (
        'attachment; filename="Cafe 100 bio.mp4"; '
        "filename*=UTF-8''Caf%C3%A9%20100%25%20%C2%ABbio%C2%BB.mp4"
    )


def _download(client, item) -> str:
    response = client.get(f"/topics/{item.topic_id}/videos/{item.pk}/download/")
    assert response.status_code == 302
    return response["Location"]


@pytest.mark.parametrize("title", list(EXPECTED))
@pytest.mark.parametrize("public", [True, False])
def test_s3_answers_the_download_with_the_titles_name(
    client, viewer, settings, s3_server, title, public
):
    for key, value in supabase_storage_settings(s3_server, BUCKET, public=public).items():
        setattr(settings, key, value)
    s3_server.client().put_object(Bucket=BUCKET, Key=KEY, Body=BODY, ContentType="video/mp4")
    item = make_stored_item(make_topic(), KEY, len(BODY))
    content_item_rename(content_item=item, title=title)
    location = _download(client, item)
    assert location.startswith(f"{s3_server.endpoint}/{BUCKET}/{KEY}?")
    assert "X-Amz-Signature=" in location and "response-content-disposition=" in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200 and fetched.content == BODY
    assert fetched.headers["Content-Disposition"] == EXPECTED[title]
    # The player's URL stays as it was: it plays, it does not download.
    card = client.get(f"/topics/{item.topic_id}/videos/{item.pk}/card/").content.decode()
    assert KEY in card.split('data-play-url="')[1].split('"')[0]  # the player opens on demand
    assert "response-content-disposition" not in card


@pytest.mark.parametrize("title", list(EXPECTED))
@pytest.mark.parametrize("public", [True, False])
def test_local_storage_answers_the_download_with_the_titles_name(
    client, viewer, local_storage, settings, title, public
):
    backend = {"BACKEND": "contentstudio.storage.LocalMediaStorage", "OPTIONS": {"public": public}}
    settings.STORAGES = {**settings.STORAGES, "default": backend}
    from django.core.files.storage import default_storage

    default_storage.save(KEY, ContentFile(BODY))
    item = make_stored_item(make_topic(), KEY, len(BODY))
    content_item_rename(content_item=item, title=title)
    location = _download(client, item)
    assert location.startswith(f"/signed-media/{KEY}?")
    fetched = client.get(location)
    assert fetched.status_code == 200 and b"".join(fetched.streaming_content) == BODY
    assert fetched["Content-Disposition"] == EXPECTED[title]
    forged = location.replace("attachment", "inline")
    assert client.get(forged).status_code == 403


def test_a_video_that_is_not_stored_has_no_download_link_of_ours(client, viewer):
    from topics.models import ContentItem

    item = ContentItem.objects.create(
        topic=make_topic(), content_type="avatar_video", status=ContentItem.Status.READY,
        content_data={"videoUrl": "https://files2.heygen.ai/legacy.mp4", "script": "Old"},
    )  # fmt: skip
    assert client.get(f"/topics/{item.topic_id}/videos/{item.pk}/download/").status_code == 404
    page = client.get(f"/topics/{item.topic_id}/").content.decode()
    assert "/download/" not in page and 'href="https://files2.heygen.ai/legacy.mp4"' in page


def test_the_download_needs_the_view_permission(client, s3_server):
    item = make_stored_item(make_topic(), KEY, 1)
    user = User.objects.create_user("nobody", password="pw-12345-long")
    client.force_login(user)
    assert client.get(f"/topics/{item.topic_id}/videos/{item.pk}/download/").status_code == 403
