"""What every video provider speaks: requests, statuses and downloads as project dataclasses."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

TERMINAL_STATUSES = {"completed", "failed"}


@dataclass(frozen=True)
class RenderRequest:
    """One avatar video to render."""

    script: str
    language: str
    avatar_id: str
    voice_id: str
    title: str = ""
    callback_id: str = ""
    width: int = 1280
    height: int = 720


@dataclass(frozen=True)
class RenderStatus:
    """The provider's view of a render, normalised."""

    provider_video_id: str
    status: str  # pending | waiting | processing | completed | failed
    video_url: str | None = None
    duration_seconds: float | None = None
    error_message: str | None = None
    error_code: str | None = None
    url_expires_at: datetime | None = None
    callback_id: str | None = None
    #: The provider's still of the video and its captions file (HeyGen: signed, 7 days).
    thumbnail_url: str | None = None
    caption_url: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_completed(self) -> bool:
        # HeyGen can report "completed" with a non-null error on free plans: the URL decides.
        return self.status == "completed" and bool(self.video_url)

    def links(self) -> dict:
        """A completed render's links and what comes with them, as JSON (kept on its job
        until the copy uses them: `completed_from_links`)."""
        expires = self.url_expires_at.isoformat() if self.url_expires_at else None
        return {"video_url": self.video_url, "thumbnail_url": self.thumbnail_url,
                "caption_url": self.caption_url, "duration_seconds": self.duration_seconds,
                "url_expires_at": expires, "callback_id": self.callback_id}  # fmt: skip

    @classmethod
    def completed_from_links(cls, provider_video_id: str, links: dict) -> "RenderStatus | None":
        """The completed status `links` were taken from; None without a video link."""
        if not links or not links.get("video_url"):
            return None
        expires = links.get("url_expires_at")
        return cls(provider_video_id=provider_video_id, status="completed",
                   video_url=links["video_url"], thumbnail_url=links.get("thumbnail_url"),
                   caption_url=links.get("caption_url"),
                   duration_seconds=links.get("duration_seconds"),
                   url_expires_at=datetime.fromisoformat(expires) if expires else None,
                   callback_id=links.get("callback_id"))  # fmt: skip


@dataclass(frozen=True)
class Avatar:
    """An avatar a render may use, as a picker shows it."""

    id: str
    name: str
    preview_image_url: str = ""


@dataclass(frozen=True)
class Voice:
    """A voice a render may use; `language` as the provider names it ("English", "he")."""

    id: str
    name: str
    language: str = ""
    gender: str = ""
    preview_audio_url: str = ""


class VideoDownload(Protocol):
    """An open stream of a rendered video; the caller closes it."""

    content_length: int | None
    content_type: str | None

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class VideoProvider(Protocol):
    """A renderer of avatar videos (HeyGen, or the offline one)."""

    name: str

    #: The longest a `create_video` call can take, retries included (a lease outlives it).
    max_call_seconds: float

    def create_video(self, request: RenderRequest) -> str:
        """Start a render; returns the provider's video id. SubmissionOutcomeUnknown when
        the call was sent and its answer lost."""

    def find_render(self, *, title: str, since: datetime) -> str | None:
        """The video id of the render created since `since` with exactly this title, or None
        when the provider's list proves there is none."""

    def get_status(self, provider_video_id: str) -> RenderStatus:
        """The render's current status (a fresh download URL when completed)."""

    def open_download(self, video_url: str) -> VideoDownload:
        """Open the rendered video for streaming."""
