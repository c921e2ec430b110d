"""Operators' pages: the health probe (no login) and the admin's storage health page."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from avatars.heartbeats import process_liveness
from studio.health import run_health_checks, storage_health
from studio.permissions import VIEW_JOBS, missing


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
    """The admin's "Storage health" page (staff only, through admin.site.admin_view, with
    the permission to view video jobs)."""
    if not request.user.has_perm(VIEW_JOBS):
        raise missing(VIEW_JOBS)
    context = {
        **admin.site.each_context(request),
        "title": "Storage health",
        "health": storage_health(),
    }
    return TemplateResponse(request, "admin/storage_health.html", context)
