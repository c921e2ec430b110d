"""Every object a content item keeps in storage, listed by one function: its video, the
video's poster (JPEG) and its captions (WebVTT), one unit in one bucket (the row's
`storage_bucket`).

Delete, regenerate, promotion, reconcile, the backfill and the storage migration all ask
`stored_objects(item)`, so a kind of file added here is handled by each of them.

The poster and captions fields sit beside the six seed metadata fields in `content_data`
(which keep their names and meaning) and are mirrored by the `poster_path` and
`captions_path` columns, as `storagePath` is by `storage_path`:
    posterPath, posterUrl, posterSize, posterChecksum, posterSource ("provider" | "frame" |
        "placeholder")
    captionsPath, captionsUrl, captionsSize, captionsChecksum, captionsLanguage,
        captionsSource ("provider" | "script")
"""

from dataclasses import dataclass
from typing import Any

from videostore.captions import VTT_TYPE
from videostore.posters import JPEG_TYPE
from videostore.storage import StoredCompanion

VIDEO, POSTER, CAPTIONS = "video", "poster", "captions"
KINDS = (VIDEO, POSTER, CAPTIONS)

_NUMBER = (int,)
POSTER_FIELDS: dict[str, tuple[type, ...]] = {
    "posterPath": (str,),
    "posterUrl": (str,),
    "posterSize": _NUMBER,
    "posterChecksum": (str,),
    "posterSource": (str,),
}
CAPTIONS_FIELDS: dict[str, tuple[type, ...]] = {
    "captionsPath": (str,),
    "captionsUrl": (str,),
    "captionsSize": _NUMBER,
    "captionsChecksum": (str,),
    "captionsLanguage": (str,),
    "captionsSource": (str,),
}
#: The fields a poster or captions entry cannot go without (all of them or none).
POSTER_REQUIRED = ("posterPath", "posterUrl", "posterSize")
CAPTIONS_REQUIRED = ("captionsPath", "captionsUrl", "captionsSize", "captionsLanguage")
#: Each kind's content_data path key and column.
PATH_KEYS = {VIDEO: "storagePath", POSTER: "posterPath", CAPTIONS: "captionsPath"}
PATH_COLUMNS = {VIDEO: "storage_path", POSTER: "poster_path", CAPTIONS: "captions_path"}
_SIZE_KEYS = {VIDEO: "fileSize", POSTER: "posterSize", CAPTIONS: "captionsSize"}
_SHA_KEYS = {VIDEO: "checksum", POSTER: "posterChecksum", CAPTIONS: "captionsChecksum"}


@dataclass(frozen=True)
class StoredFile:
    """One stored object of an item: what it is, where, and what it should measure."""

    kind: str  # "video" | "poster" | "captions"
    storage_path: str
    size: int | None
    sha256: str | None
    content_type: str


def _content_type(kind: str, data: dict) -> str:
    if kind == POSTER:
        return JPEG_TYPE
    if kind == CAPTIONS:
        return VTT_TYPE
    return data.get("fileType") or "video/mp4"


def _stored_file(kind: str, path: str, data: dict) -> StoredFile:
    size = data.get(_SIZE_KEYS[kind]) if data.get(PATH_KEYS[kind]) == path else None
    sha = data.get(_SHA_KEYS[kind]) if data.get(PATH_KEYS[kind]) == path else None
    return StoredFile(kind, path, size if isinstance(size, int) else None, sha or None,
                      _content_type(kind, data))  # fmt: skip


def stored_objects(item: Any) -> list[StoredFile]:
    """The objects the item's row points at (its columns, read under the caller's lock when
    it decides anything), video first; sizes and checksums from its content_data."""
    data = item.content_data if isinstance(item.content_data, dict) else {}
    paths = {kind: getattr(item, column, "") or "" for kind, column in PATH_COLUMNS.items()}
    return [_stored_file(kind, path, data) for kind, path in paths.items() if path]


def stored_objects_in(content_data: Any) -> list[StoredFile]:
    """The objects a content_data (not yet saved) points at, video first."""
    data = content_data if isinstance(content_data, dict) else {}
    paths = {kind: data.get(key) or "" for kind, key in PATH_KEYS.items()}
    return [_stored_file(kind, path, data) for kind, path in paths.items()
            if isinstance(path, str) and path]  # fmt: skip


def poster_data(poster: StoredCompanion, *, source: str) -> dict:
    """The poster's content_data fields."""
    return {"posterPath": poster.storage_path, "posterUrl": poster.file_url,
            "posterSize": poster.size, "posterChecksum": poster.sha256,
            "posterSource": source}  # fmt: skip


def captions_data(captions: StoredCompanion, *, source: str, language: str) -> dict:
    """The captions' content_data fields."""
    return {"captionsPath": captions.storage_path, "captionsUrl": captions.file_url,
            "captionsSize": captions.size, "captionsChecksum": captions.sha256,
            "captionsLanguage": language, "captionsSource": source}  # fmt: skip


def without_poster_and_captions(content_data: dict) -> dict:
    """The content_data with no poster or captions fields (their objects go with the video)."""
    return {key: value for key, value in content_data.items()
            if key not in POSTER_FIELDS and key not in CAPTIONS_FIELDS}  # fmt: skip
