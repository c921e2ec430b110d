"""Locally stored media (the embedded default; Supabase serves its own)."""

from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponseForbidden

from contentstudio.storage import LocalMediaStorage, verify_media_signature


def _open_local(path: str) -> FileResponse:
    if not isinstance(default_storage, LocalMediaStorage):
        raise Http404("Media is served by the storage provider.")
    if ".." in PurePosixPath(path).parts or not default_storage.exists(path):
        raise Http404("No such file.")
    return FileResponse(default_storage.open(path, "rb"), content_type=None)


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
    response = _open_local(path)
    if disposition:  # signed by us: the header our storage asked for, as S3 would answer
        response["Content-Disposition"] = disposition
    return response
