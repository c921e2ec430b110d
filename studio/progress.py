"""Live job progress for the studio pages (polled by static/studio/progress.js; no build step).

Only for users who may view content items: the progress carries the item's last error."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from avatars.models import VideoJob
from studio import cards
from studio.permissions import VIEW_VIDEOS, require

MAX_JOBS_PER_POLL = 100


@login_required
@require(VIEW_VIDEOS)
@require_GET
def job_progress(request, job_id: int) -> JsonResponse:
    job = get_object_or_404(VideoJob.objects.select_related("content_item"), pk=job_id)
    return JsonResponse(cards.job_progress([job])[0])


@login_required
@require(VIEW_VIDEOS)
@require_GET
def jobs_progress(request) -> JsonResponse:
    """Several jobs in one request (`?id=1&id=2`): one poll for every video on a page."""
    try:
        ids = sorted({int(value) for value in request.GET.getlist("id")})
    except ValueError:
        return HttpResponseBadRequest("id must be a job number.")
    if len(ids) > MAX_JOBS_PER_POLL:
        return HttpResponseBadRequest(f"At most {MAX_JOBS_PER_POLL} jobs per request.")
    jobs = list(VideoJob.objects.select_related("content_item").filter(pk__in=ids))
    return JsonResponse({"jobs": cards.job_progress(jobs)})
