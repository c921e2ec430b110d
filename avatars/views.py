"""Job progress for the studio pages (polled; no front-end build step)."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from avatars.models import VideoJob


@login_required
def job_progress(request, job_id: int) -> JsonResponse:
    job = get_object_or_404(VideoJob, pk=job_id)
    return JsonResponse(
        {
            "id": job.pk,
            "state": job.state,
            "state_label": job.get_state_display(),
            "is_terminal": job.state in VideoJob.TERMINAL_STATES,
            "attempts": job.attempts,
            "last_error": job.last_error,
            "item_id": job.content_item_id,
        }
    )
