"""Locally stored media (the embedded default; Supabase serves its own)."""

from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponseForbidden

from contentstudio.storage import LocalMediaStorage, verify_media_signature


def _open_local(path: str, storage: LocalMediaStorage | None = None) -> FileResponse:
    storage = storage or default_storage
    if not isinstance(storage, LocalMediaStorage):
        raise Http404("Media is served by the storage provider.")
    if ".." in PurePosixPath(path).parts or not storage.exists(path):
        raise Http404("No such file.")
    return FileResponse(storage.open(path, "rb"), content_type=None)


def public_media(request: HttpRequest, path: str) -> FileResponse:
    """Public media, only when the local bucket is public."""
    if not getattr(default_storage, "public_bucket", False):
        raise Http404("This bucket is private.")
    return _open_local(path)


def signed_media(request: HttpRequest, path: str):
    """Media behind an expiring signature that covers exactly this path, and the
    Content-Disposition it answers with when the link names a download."""
    disposition = request.GET.get("disposition", "")
    if not verify_media_signature(
        path, request.GET.get("expires", ""), request.GET.get("signature", ""), disposition
    ):
        return HttpResponseForbidden("This link has expired or is not valid for this file.")
    # Local files under MEDIA_ROOT, also beside a configured bucket (rows not moved yet).
    local = default_storage if isinstance(default_storage, LocalMediaStorage) else None
    response = _open_local(path, local or LocalMediaStorage(public=False))
    if disposition:  # signed by us: the header our storage asked for, as S3 would answer
        response["Content-Disposition"] = disposition
    return response
