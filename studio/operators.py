"""Operators' pages: the health probe (no login) and the admin's storage health page."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from studio.health import run_health_checks, storage_health


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors, without login: 200 when every check passes, else 503."""
    results = run_health_checks()
    failing = [result.name for result in results if not result.ok]
    body = {
        "status": "failing" if failing else "ok",
        "failing": failing,
        "checks": {result.name: result.as_dict() for result in results},
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
