"""HeyGen webhook endpoint: verified, idempotent, and never trusted beyond a wake-up call."""

import hashlib
import hmac
import json
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from avatars.jobs import handle_render_event
from avatars.models import WebhookEvent

logger = logging.getLogger(__name__)

HANDLED_EVENTS = {"avatar_video.success", "avatar_video.fail"}


def signature_is_valid(body: bytes, signature: str, secret: str) -> bool:
    """Hex HMAC-SHA256 of the raw body keyed with the endpoint secret, compared in constant time."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, (signature or "").strip().lower())


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
def heygen_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":  # HeyGen probes the URL with a 1-second timeout
        return HttpResponse(status=200)
    secret = settings.HEYGEN_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"error": "Webhooks are not configured."}, status=503)
    signature = request.headers.get("X-HeyGen-Signature") or request.headers.get("Signature", "")
    if not signature_is_valid(request.body, signature, secret):
        return JsonResponse({"error": "Invalid signature."}, status=401)
    try:
        payload = json.loads(request.body)
        event_type = payload["event_type"]
        event_data = payload.get("event_data") or {}
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "Malformed event."}, status=400)
    if event_type not in HANDLED_EVENTS:
        return JsonResponse({"status": "ignored"})
    video_id = str(event_data.get("video_id") or "")
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(
                digest=hashlib.sha256(request.body).hexdigest(),
                event_type=event_type,
                provider_video_id=video_id,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    outcome = handle_render_event(
        callback_id=str(event_data.get("callback_id") or ""), provider_video_id=video_id
    )
    logger.info("heygen webhook", extra={"event_type": event_type, "video_id": video_id})
    return JsonResponse({"status": outcome})
