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
#: The longest video_id / callback_id accepted (WebhookEvent.provider_video_id's length).
MAX_ID_CHARS = 128


class MalformedEvent(ValueError):
    """A validly signed body that is not a HeyGen event we can read."""


def signature_is_valid(body: bytes, signature: str, secret: str) -> bool:
    """Hex HMAC-SHA256 of the raw body keyed with the endpoint secret, compared in constant time."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, (signature or "").strip().lower())


def parse_event(body: bytes) -> tuple[str, dict]:
    """(event_type, event_data) of a webhook body; MalformedEvent for anything else."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise MalformedEvent("the body is not UTF-8") from error
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly nested JSON
        raise MalformedEvent("the body is not JSON") from error
    if not isinstance(payload, dict):
        raise MalformedEvent("the body is not a JSON object")
    event_type = payload.get("event_type")
    if not isinstance(event_type, str):
        raise MalformedEvent("event_type is missing or not a string")
    event_data = payload.get("event_data")
    if event_data is None:
        event_data = {}
    if not isinstance(event_data, dict):
        raise MalformedEvent("event_data is not an object")
    return event_type, event_data


def event_identifier(event_data: dict, key: str) -> str:
    """A string id from event_data ("" when absent); MalformedEvent when not a short string."""
    value = event_data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedEvent(f"{key} is not a string")
    if len(value) > MAX_ID_CHARS:
        raise MalformedEvent(f"{key} is longer than {MAX_ID_CHARS} characters")
    if not value.isprintable():  # NUL or lone surrogates would fail in PostgreSQL (a 500)
        raise MalformedEvent(f"{key} has control or unpaired surrogate characters")
    return value


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
        event_type, event_data = parse_event(request.body)
        if event_type not in HANDLED_EVENTS:
            return JsonResponse({"status": "ignored"})
        video_id = event_identifier(event_data, "video_id")
        callback_id = event_identifier(event_data, "callback_id")
    except MalformedEvent as error:
        logger.warning("heygen webhook refused: %s", error, extra={"reason": str(error)})
        return JsonResponse({"error": f"Malformed event: {error}."}, status=400)
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(
                digest=hashlib.sha256(request.body).hexdigest(),
                event_type=event_type,
                provider_video_id=video_id,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    outcome = handle_render_event(callback_id=callback_id, provider_video_id=video_id,
                                  succeeded=event_type == "avatar_video.success")  # fmt: skip
    logger.info(
        "heygen webhook %s for video %s (callback_id %s): %s",
        event_type,
        video_id,
        callback_id,
        outcome,
        extra={"event_type": event_type, "video_id": video_id, "outcome": outcome},
    )
    return JsonResponse({"status": outcome})
