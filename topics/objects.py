"""Every stored object of a content item, named once: what a move between storages copies,
what a delete removes, what a check verifies."""

from dataclasses import dataclass

from topics.models import ContentItem
from videostore.reader import MP4_TYPE


@dataclass(frozen=True)
class StoredFile:
    """One object an item keeps in its location (`item.storage_bucket`): its kind ("video";
    posters and captions to come), its key, and what the row says its bytes are."""

    kind: str
    storage_path: str
    size: int | None
    sha256: str | None
    content_type: str


def stored_objects(item: ContentItem) -> list[StoredFile]:
    """The objects the item's row references, in a stable order (the video first)."""
    data = item.content_data if isinstance(item.content_data, dict) else {}
    files = []
    if item.storage_path:
        size = data.get("fileSize")
        files.append(
            StoredFile(
                kind="video",
                storage_path=item.storage_path,
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                sha256=data.get("checksum") or None,
                content_type=data.get("fileType") or MP4_TYPE,
            )
        )
    return files
