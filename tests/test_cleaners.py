"""The avatar video content_data cleaner keeps exactly the documented fields."""

import pytest

from topics.cleaners import clean_avatar_video_data, clean_content_data
from topics.errors import InvalidContentData

STORED = {
    "script": "Hello",
    "videoUrl": "https://p.supabase.co/storage/v1/object/public/media/avatar_videos/avatar_1_ab.mp4",
    "videoId": "1",
    "duration_seconds": 12.5,
    "fileUrl": "https://p.supabase.co/storage/v1/object/public/media/avatar_videos/avatar_1_ab.mp4",
    "fileName": "avatar_1_ab.mp4",
    "fileSize": 5242880,
    "fileType": "video/mp4",
    "storagePath": "avatar_videos/avatar_1_ab.mp4",
    "uploadedAt": "2025-01-22T12:00:00Z",
    "checksum": "a" * 64,
    "width": 1280,
    "height": 720,
    "metadata": {"heygen_video_url": "https://files2.heygen.ai/x.mp4", "storage_fallback": False},
}


def test_keeps_documented_fields_and_drops_the_rest():
    data = {**STORED, "status": "completed", "fallback": False, "language": "he", "junk": 1}
    data["metadata"] = {**STORED["metadata"], "generation_status": "completed"}
    assert clean_avatar_video_data(data) == STORED


def test_accepts_the_seed_nested_storage_metadata():
    nested = {k: STORED[k] for k in ("fileUrl", "fileName", "fileSize", "fileType")}
    nested |= {"storagePath": STORED["storagePath"], "uploadedAt": STORED["uploadedAt"]}
    data = {"videoUrl": STORED["videoUrl"], "metadata": {"storage_metadata": nested}}
    cleaned = clean_avatar_video_data(data)
    assert cleaned["storagePath"] == "avatar_videos/avatar_1_ab.mp4"
    assert "storage_metadata" not in cleaned.get("metadata", {})


def test_legacy_row_with_only_a_provider_url_is_valid():
    assert clean_avatar_video_data({"videoUrl": "https://files2.heygen.ai/x.mp4"}) == {
        "videoUrl": "https://files2.heygen.ai/x.mp4"
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fileSize", "5MB", "content_data.fileSize must be int"),
        ("fileSize", True, "content_data.fileSize must be int"),
        ("duration_seconds", "long", "content_data.duration_seconds must be int or float"),
        ("storagePath", "../etc/passwd", "storagePath must be a path under"),
        ("storagePath", "avatar_videos/../../x.mp4", "storagePath must be a path under"),
        ("uploadedAt", "yesterday", "uploadedAt must be an ISO 8601 time"),
    ],
)
def test_malformed_fields_give_a_clear_error(field, value, message):
    with pytest.raises(InvalidContentData, match=message):
        clean_avatar_video_data({**STORED, field: value})


def test_incomplete_storage_metadata_is_refused():
    data = {**STORED}
    del data["fileSize"]
    with pytest.raises(InvalidContentData, match="missing fileSize"):
        clean_avatar_video_data(data)


def test_needs_a_url_and_an_object():
    with pytest.raises(InvalidContentData, match="needs videoUrl or fileUrl"):
        clean_avatar_video_data({"script": "x"})
    with pytest.raises(InvalidContentData, match="must be an object"):
        clean_content_data("avatar_video", ["not", "a", "dict"])


@pytest.mark.parametrize(
    "storage_path",
    [
        "avatar_videos//x.mp4",
        "avatar_videos/./x.mp4",
        "avatar_videos/x\x7f.mp4",
        "avatar_videos/" + "x" * 1020 + ".mp4",
        "avatar_videos/",
    ],
)
def test_one_storage_path_rule_refuses_the_same_paths_everywhere(storage_path):
    from videostore.errors import InvalidStoragePath
    from videostore.storage import validate_storage_path

    with pytest.raises(InvalidStoragePath):
        validate_storage_path(storage_path)
    with pytest.raises(InvalidContentData, match="storagePath must be a path under"):
        clean_avatar_video_data(STORED | {"storagePath": storage_path})
