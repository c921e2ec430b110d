"""Small builders for rows and objects used across tests."""

import hashlib
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import Permission, User

from topics.models import ContentItem, Topic


def make_topic(title: str = "Photosynthesis", language: str = "en") -> Topic:
    return Topic.objects.create(title=title, language=language)


def stored_video_data(storage_path: str, size: int, *, content: bytes = b"") -> dict:
    """content_data of a stored avatar video pointing at `storage_path`."""
    url = f"{settings.SUPABASE_URL}/storage/v1/object/public/media/{storage_path}"
    return {
        "script": "Hello",
        "videoUrl": url,
        "videoId": storage_path.rsplit("/", 1)[-1].removesuffix(".mp4"),
        "duration_seconds": 2.0,
        "fileUrl": url,
        "fileName": storage_path.rsplit("/", 1)[-1],
        "fileSize": size,
        "fileType": "video/mp4",
        "storagePath": storage_path,
        "uploadedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "checksum": hashlib.sha256(content).hexdigest(),
        "metadata": {
            "heygen_video_url": "https://files2.heygen.ai/x.mp4",
            "storage_fallback": False,
        },
    }


def make_stored_item(topic: Topic, storage_path: str, size: int) -> ContentItem:
    return ContentItem.objects.create(
        topic=topic,
        content_type=ContentItem.ContentType.AVATAR_VIDEO,
        content_data=stored_video_data(storage_path, size),
        status=ContentItem.Status.READY,
        storage_path=storage_path,
    )


def run_command(name: str, *args: str, **kwargs) -> int:
    """call_command, returning the exit code the command would give on the command line."""
    from django.core.management import CommandError, call_command

    try:
        call_command(name, *args, **kwargs)
    except CommandError as error:
        return error.returncode
    return 0


def generate_through_preview(client, topic: Topic, data: dict):
    """Post the studio's generate form, check it only previewed (nothing queued), then post
    its Confirm; the Confirm's response."""
    from avatars.models import VideoJob

    before = VideoJob.objects.count()
    preview = client.post(f"/topics/{topic.pk}/videos/", data)
    assert preview.status_code == 200 and VideoJob.objects.count() == before
    confirm = preview.context["confirm"]
    fields = {name: confirm[name].value() for name in confirm.fields}
    fields = {name: "" if value is None else value for name, value in fields.items()}
    return client.post(f"/topics/{topic.pk}/videos/confirm/", fields)


def log_in_author(client, codenames) -> User:
    """A user named author with these permission codenames, logged in on `client`."""
    user = User.objects.create_user("author", password="pw-12345-long")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def stored_keys(item: ContentItem) -> list[str]:
    """The keys of every object the item's row points at (video, poster, captions), sorted as
    the bucket lists them."""
    from topics.objects import stored_objects

    item.refresh_from_db()
    return sorted(stored.storage_path for stored in stored_objects(item))
