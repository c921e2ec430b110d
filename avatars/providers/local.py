"""The offline provider: renders real MP4s on this machine (no key, no network)."""

import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings

from avatars.errors import DownloadNotAllowed, RenderFailed
from avatars.providers.base import RenderRequest, RenderStatus
from avatars.providers.offline import OfflineRenderError, render_script_video


class LocalFileDownload:
    """A rendered file streamed from disk, removed once closed."""

    def __init__(self, path: Path):
        self.path = path
        self.content_length = path.stat().st_size
        self.content_type = "video/mp4"

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while data := handle.read(chunk_size):
                yield data

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


class LocalVideoProvider:
    """Renders the script as a title-card video with ffmpeg; completes at once."""

    name = "local"
    #: Renders happen inside the create call (ffmpeg on this machine).
    max_call_seconds = 120.0

    def __init__(self, work_dir: Path | None = None):
        self.work_dir = work_dir or Path(tempfile.gettempdir()) / "contentstudio-offline"
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, provider_video_id: str) -> Path:
        if not provider_video_id.startswith("local_") or not provider_video_id[6:].isalnum():
            raise DownloadNotAllowed("Not a video of the offline provider.")
        return self.work_dir / f"{provider_video_id}.mp4"

    def _render(self, provider_video_id: str, script: str) -> None:
        try:
            render_script_video(
                script,
                self._path(provider_video_id),
                width=settings.OFFLINE_VIDEO_WIDTH,
                height=settings.OFFLINE_VIDEO_HEIGHT,
                max_seconds=settings.OFFLINE_VIDEO_MAX_SECONDS,
            )
        except OfflineRenderError as error:
            raise RenderFailed(str(error)) from error

    @staticmethod
    def _video_id(title: str) -> str:
        """A title names its render (so it can be found again); no title, a fresh id."""
        if not title:
            return f"local_{uuid.uuid4().hex}"
        return "local_" + hashlib.sha256(title.encode()).hexdigest()[:32]

    def create_video(self, request: RenderRequest) -> str:
        provider_video_id = self._video_id(request.title)
        # The script is kept so a retried job can render again after the file was consumed.
        self._path(provider_video_id).with_suffix(".txt").write_text(request.script, "utf-8")
        self._render(provider_video_id, request.script)
        return provider_video_id

    def find_render(self, *, title: str, since: datetime) -> str | None:
        """The render this title named, if its create got as far as recording it."""
        provider_video_id = self._video_id(title)
        return (
            provider_video_id
            if self._path(provider_video_id).with_suffix(".txt").exists()
            else None
        )

    def get_status(self, provider_video_id: str) -> RenderStatus:
        path = self._path(provider_video_id)
        script_file = path.with_suffix(".txt")
        if not path.exists() and script_file.exists():
            self._render(provider_video_id, script_file.read_text("utf-8"))
        if not path.exists():
            return RenderStatus(
                provider_video_id, "failed", error_message="The offline render is gone."
            )
        return RenderStatus(
            provider_video_id=provider_video_id,
            status="completed",
            video_url=path.as_uri(),
        )

    def open_download(self, video_url: str) -> LocalFileDownload:
        name = video_url.rsplit("/", 1)[-1].removesuffix(".mp4")
        path = self._path(name)
        if video_url != path.as_uri() or not path.exists():
            raise DownloadNotAllowed("The offline provider only serves its own renders.")
        return LocalFileDownload(path)
