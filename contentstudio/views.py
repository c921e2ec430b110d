"""Project-level pages: locally stored media (the embedded default; Supabase serves its
own), the health probe and the admin's storage health page."""

from pathlib import PurePosixPath

from django.contrib import admin
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponseForbidden, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from avatars.health import run_health_checks, storage_health
from avatars.heartbeats import process_liveness
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
    """Media behind an expiring signature that covers exactly this path."""
    if not verify_media_signature(
        path, request.GET.get("expires", ""), request.GET.get("signature", "")
    ):
        return HttpResponseForbidden("This link has expired or is not valid for this file.")
    return _open_local(path)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors, without login: 200 when every check passes, else 503.
    A missing engine or qcluster is a warning, not a 503: this web process still serves, and
    a load balancer must not take every web process out because a worker is down."""
    results = run_health_checks()
    failing = [result.name for result in results if not result.ok]
    processes = process_liveness()
    body = {
        "status": "failing" if failing else "ok",
        "failing": failing,
        "warnings": [process.name for process in processes if not process.ok],
        "checks": {result.name: result.as_dict() for result in results},
        "processes": {process.name: process.as_dict() for process in processes},
    }
    return JsonResponse(body, status=503 if failing else 200)


def storage_health_page(request: HttpRequest) -> TemplateResponse:
    """The admin's "Storage health" page (staff only, through admin.site.admin_view)."""
    context = {
        **admin.site.each_context(request),
        "title": "Storage health",
        "health": storage_health(),
    }
    return TemplateResponse(request, "admin/storage_health.html", context)
