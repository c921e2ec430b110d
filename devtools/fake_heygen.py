"""A fake HeyGen server: a real HTTP server speaking the documented API, for tests and demos.

It renders real MP4s with the offline renderer, walks each video through
pending -> processing -> completed over successive status polls, serves the file from an
expiring signed URL, sends webhooks when an endpoint is registered, and can be told to
misbehave (see FAULTS) from Python or with `POST /_fake/faults`.
"""

import hashlib
import hmac
import json
import logging
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from avatars.providers.offline import render_script_video
from videostore.captions import script_cues, script_to_vtt
from videostore.posters import frame_jpeg

logger = logging.getLogger(__name__)

FAULTS = {
    "generate_429": "answer N generate calls with 429 + Retry-After 1",
    "generate_500": "answer N generate calls with 500",
    "status_500": "answer N status calls with 500",
    "slow": "sleep this many seconds before answering any API call",
    "slow_download": "stream the MP4 over about this many seconds",
    "render_failed": "renders end in status failed",
    "truncated_body": "announce the full length, send half, close",
    "html_body": "serve an HTML page instead of the MP4",
    "wrong_content_length": "announce more bytes than are sent",
    "quota": "generate answers 429 trial_video_limit_exceeded",
    "invalid_avatar": "generate answers 400 avatar not found",
    "serve_file": "serve this file (path) as every video's bytes",
    "no_video_url": "completed renders come without a video_url",
    "accept_then_sleep": "create the render, then wait this many seconds before answering",
    "accept_then_drop": "create the render, then close the connection without an answer (N)",
    "sleep_then_accept": "wait this many seconds, then create the render and answer",
    "list_500": "answer N video.list calls with 500",
    "no_captions": "completed renders come without caption_url (HeyGen made no captions)",
    "no_thumbnail": "completed renders come without thumbnail_url",
    "vtt_captions": "serve captions as WebVTT instead of SRT",
}
#: How long the fake's renders last (seconds), as its status reports them.
RENDER_DURATION_SECONDS = 4.0
#: The account's avatars and voices (GET /v2/avatars, /v2/voices); previews served here.
AVATARS = [
    {"avatar_id": "Daisy-inskirt-20220818", "avatar_name": "Daisy", "gender": "female",
     "colour": "#c2410c"},
    {"avatar_id": "Tyler-incasualsuit-20220721", "avatar_name": "Tyler", "gender": "male",
     "colour": "#1d4ed8"},
    {"avatar_id": "Anna-public-3", "avatar_name": "Anna", "gender": "female",
     "colour": "#15803d"},
]  # fmt: skip
VOICES = [
    {"voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54", "language": "English", "gender": "female",
     "name": "Rachel"},
    {"voice_id": "131a436c47064f708210df6628ef8f32", "language": "English", "gender": "male",
     "name": "Paul"},
    {"voice_id": "he-IL-avri", "language": "Hebrew", "gender": "male", "name": "Avri"},
    {"voice_id": "he-IL-hila", "language": "Hebrew", "gender": "female", "name": "Hila"},
    {"voice_id": "es-ES-elvira", "language": "Spanish", "gender": "female", "name": "Elvira"},
]  # fmt: skip
#: The remaining API quota a fresh fake reports (seconds of video; 60 make one credit).
DEFAULT_REMAINING_QUOTA = 600 * 60


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up before its answer (the timeout faults) is not an error here."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeHeyGenServer:
    """Start with `.start()`; `.base_url` is what HEYGEN_API_BASE should be."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "fake-heygen-key",
        polls_per_step: int = 1,
        width: int = 320,
        height: int = 180,
        url_ttl_seconds: int = 3600,
        render_seconds: float = 0,
        max_concurrent: int = 0,
    ):
        self.api_key = api_key
        # Wall-clock renders: a video completes `render_seconds` after creation (0: by polls,
        # `polls_per_step`), like HeyGen, calling the registered webhook when it does.
        self.render_seconds = render_seconds
        # The plan's concurrent-render cap (0: none); over it, generate answers 429.
        self.max_concurrent = max_concurrent
        self.remaining_quota = DEFAULT_REMAINING_QUOTA
        self.stats = {"renders_created": 0, "max_in_progress": 0, "downloads": 0,
                      "concurrency_429": 0, "status_calls": 0}  # fmt: skip
        self.polls_per_step = polls_per_step
        self.width, self.height = width, height
        self.url_ttl_seconds = url_ttl_seconds
        self.signing_key = secrets.token_bytes(16)
        self.webhook: dict | None = None
        self.videos: dict[str, dict] = {}
        self.faults: dict = {}
        # Bumped by reset(): a create still sleeping in a fault from before (a test that
        # ended) answers nothing and neither records a render nor takes a newer fault.
        self.generation = 0
        self.stale_requests = 0  # how many were dropped so (reset() leaves it)
        self.requests_seen: list[str] = []
        self.lock = threading.Lock()
        self.render_dir = Path(tempfile.mkdtemp(prefix="fake-heygen-"))
        self._renders: dict[str, Path] = {}
        self._render_locks: dict[str, threading.Lock] = {}
        self._thumbnails: dict[Path, bytes] = {}
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = _QuietServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def host_port(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host_port}"

    def start(self) -> "FakeHeyGenServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.render_dir, ignore_errors=True)

    def set_fault(self, name: str, value=True) -> None:
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        with self.lock:
            self.faults[name] = value

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.faults.clear()
            self.videos.clear()
            self.webhook = None
            self.requests_seen.clear()
            self.render_seconds = 0
            self.max_concurrent = 0
            self.remaining_quota = DEFAULT_REMAINING_QUOTA
            for key in self.stats:
                self.stats[key] = 0

    def in_progress(self) -> int:
        """Renders created and not yet finished (the provider's own count; under the lock)."""
        now = time.monotonic()
        return sum(
            1
            for video in self.videos.values()
            if video["status"] not in ("completed", "failed")
            and not (self.render_seconds and now - video["created"] >= self.render_seconds)
        )

    def take_fault(self, name: str) -> bool:
        """For counted faults: consume one occurrence."""
        with self.lock:
            value = self.faults.get(name)
            if not value:
                return False
            if value is not True and isinstance(value, int):
                self.faults[name] = value - 1
            return True

    def render(self, script: str) -> Path:
        """The script's MP4, rendered once (one writer per file: threads wait for it)."""
        key = hashlib.sha256(f"{script}|{self.width}x{self.height}".encode()).hexdigest()[:16]
        with self.lock:
            path = self._renders.get(key)
            render_lock = self._render_locks.setdefault(key, threading.Lock())
        if path is not None:
            return path
        with render_lock:
            with self.lock:
                path = self._renders.get(key)
            if path is None:
                path = render_script_video(
                    script, self.render_dir / f"{key}.mp4", width=self.width,
                    height=self.height, max_seconds=4,
                )  # fmt: skip
                with self.lock:
                    self._renders[key] = path
        return path

    def thumbnail(self, script: str) -> bytes:
        """A real JPEG: a frame of the script's render, as HeyGen's thumbnail_url serves (a
        file made once with the render, not an ffmpeg run per request on this host's CPU)."""
        path = self.render(script)
        with self.lock:
            jpeg = self._thumbnails.get(path)
        if jpeg is None:
            jpeg = frame_jpeg(str(path), at_seconds=0.5)
            with self.lock:
                self._thumbnails[path] = jpeg
        return jpeg

    def captions(self, script: str, *, vtt: bool) -> bytes:
        """The script's captions as HeyGen would make them: SRT (or WebVTT)."""
        if vtt:
            return script_to_vtt(script, RENDER_DURATION_SECONDS).encode()

        def srt_time(seconds: float) -> str:
            millis = round(seconds * 1000)
            return (f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:"
                    f"{millis // 1000 % 60:02d},{millis % 1000:03d}")  # fmt: skip

        cues = script_cues(script, RENDER_DURATION_SECONDS)
        return "".join(
            f"{number}\r\n{srt_time(cue.start)} --> {srt_time(cue.end)}\r\n{cue.text}\r\n\r\n"
            for number, cue in enumerate(cues, start=1)
        ).encode()

    def file_url(self, video_id: str, extension: str) -> str:
        expires = int(time.time()) + self.url_ttl_seconds
        return (
            f"{self.base_url}/files/{video_id}.{extension}?Expires={expires}"
            f"&Signature={self.sign(video_id, expires)}"
        )

    def sign(self, video_id: str, expires: int) -> str:
        return hmac.new(self.signing_key, f"{video_id}:{expires}".encode(), "sha256").hexdigest()

    def video_url(self, video_id: str) -> str:
        expires = int(time.time()) + self.url_ttl_seconds
        return (
            f"{self.base_url}/files/{video_id}.mp4?Expires={expires}"
            f"&Signature={self.sign(video_id, expires)}"
        )

    def finish_render(self, video_id: str) -> None:
        """Wall-clock mode: the render is done; tell the registered webhook, as HeyGen does."""
        with self.lock:
            video = self.videos.get(video_id)
            if video is None or video["status"] in ("completed", "failed"):
                return
            video["status"] = "failed" if self.faults.get("render_failed") else "completed"
            if video["status"] == "failed":
                video["error"] = {"code": 40119, "message": "Video is too long", "detail": ""}
            snapshot = dict(video)
        if snapshot["status"] == "completed":
            self.render(snapshot["script"])
        self.send_webhook(snapshot)

    def send_webhook(self, video: dict) -> None:
        if not self.webhook:
            return
        if video["status"] == "completed":
            event = {
                "event_type": "avatar_video.success",
                "event_data": {
                    "video_id": video["id"],
                    "url": self.video_url(video["id"]),
                    "callback_id": video["callback_id"],
                },
            }
        else:
            event = {
                "event_type": "avatar_video.fail",
                "event_data": {
                    "video_id": video["id"],
                    "msg": video["error"]["message"],
                    "callback_id": video["callback_id"],
                },
            }
        body = json.dumps(event).encode()
        signature = hmac.new(self.webhook["secret"].encode(), body, "sha256").hexdigest()
        try:
            requests.post(
                self.webhook["url"],
                data=body,
                headers={"Content-Type": "application/json", "X-HeyGen-Signature": signature},
                timeout=5,
            )
        except requests.RequestException:
            logger.warning("fake heygen: webhook delivery failed")


STEPS = ["pending", "processing", "completed"]
#: What `GET /_fake/renders` tells of each render (benchmarks: render done = created_at + R).
RENDER_FIGURES = ("id", "created_at", "render_seconds", "status_calls", "status")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHeyGenServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, a kept-alive
    # connection's body waited for the client's delayed ACK (40 ms a file), as no CDN does.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # quiet: tests read their own output
        return

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, headers=None) -> None:
        self._json(status, {"data": None, "error": {"code": code, "message": message}}, headers)

    def _authorised(self) -> bool:
        if self.headers.get("X-Api-Key") != self.fake.api_key:
            self._error(401, "unauthorized", "Unauthorized: invalid API key")
            return False
        return True

    def _body(self) -> dict:
        try:
            return json.loads(self._raw_body or b"{}")
        except ValueError:
            return {}

    def do_POST(self):
        # Read the body first: an unread body would be parsed as the next request.
        self._raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        self.fake.requests_seen.append(f"POST {path}")
        if path == "/_fake/faults":
            for name, value in self._body().items():
                self.fake.set_fault(name, value)
            return self._json(200, {"faults": self.fake.faults})
        if path == "/_fake/config":  # {"render_seconds": R, "max_concurrent": C, ...}
            body = self._body()
            with self.fake.lock:
                self.fake.render_seconds = float(body.get("render_seconds", 0))
                self.fake.max_concurrent = int(body.get("max_concurrent", 0))
                quota = body.get("remaining_quota", DEFAULT_REMAINING_QUOTA)
                self.fake.remaining_quota = int(quota)
            return self._json(200, {"ok": True})
        if path == "/_fake/reset":
            self.fake.reset()
            return self._json(200, {"ok": True})
        if self.fake.faults.get("slow"):
            time.sleep(float(self.fake.faults["slow"]))
        if not self._authorised():
            return None
        if path == "/v2/video/generate":
            return self._generate()
        if path == "/v1/webhook/endpoint.add":
            body = self._body()
            secret = f"whsec_{secrets.token_hex(16)}"
            self.fake.webhook = {"url": body.get("url"), "secret": secret}
            return self._json(
                200,
                {"code": 100, "data": {"endpoint_id": uuid.uuid4().hex, "url": body.get("url"),
                                       "secret": secret, "status": "enabled",
                                       "events": body.get("events")}},
            )  # fmt: skip
        return self._error(404, "not_found", "Not found")

    def _stale(self, generation: int) -> bool:
        """This request began before the fake was reset: drop it without an answer."""
        if self.fake.generation == generation:
            return False
        self.fake.stale_requests += 1
        self.close_connection = True
        self.connection.shutdown(2)
        return True

    def _generate(self):
        fake = self.fake
        generation = fake.generation
        if fake.take_fault("generate_429"):
            return self._error(429, "rate_limited", "Too many requests", {"Retry-After": "1"})
        if fake.take_fault("generate_500"):
            return self._error(500, "internal_error", "Internal server error")
        if fake.faults.get("quota"):
            return self._error(429, "trial_video_limit_exceeded", "Exceed daily api trial limit 5.")
        if fake.faults.get("invalid_avatar"):
            return self._error(400, "avatar_not_found", "Avatar not found")
        if fake.faults.get("sleep_then_accept"):  # the request is slow to arrive
            time.sleep(float(fake.faults["sleep_then_accept"]))
            if self._stale(generation):
                return None
        body = self._body()
        try:
            scene = body["video_inputs"][0]
            script = scene["voice"]["input_text"]
            assert scene["character"]["avatar_id"] and scene["voice"]["voice_id"]
        except (KeyError, IndexError, TypeError, AssertionError):
            return self._error(400, "invalid_parameter", "video_inputs is invalid")
        video_id = uuid.uuid4().hex
        with fake.lock:
            if self._stale(generation):
                return None
            if fake.max_concurrent and fake.in_progress() >= fake.max_concurrent:
                fake.stats["concurrency_429"] += 1
                return self._error(
                    429, "concurrent_limit", "Concurrent video limit reached.", {"Retry-After": "1"}
                )
            fake.videos[video_id] = {
                "id": video_id,
                "script": script,
                "callback_id": body.get("callback_id"),
                "title": body.get("title") or "",
                "created_at": time.time(),
                "polls": 0,
                "status": "pending",
                "error": None,
                "created": time.monotonic(),
                "render_seconds": fake.render_seconds,
                "status_calls": 0,
                "caption": body.get("caption") is True,
            }
            fake.stats["renders_created"] += 1
            fake.stats["max_in_progress"] = max(fake.stats["max_in_progress"], fake.in_progress())
            render_seconds = fake.render_seconds
        if render_seconds:
            timer = threading.Timer(render_seconds, fake.finish_render, args=(video_id,))
            timer.daemon = True
            timer.start()
        if fake.faults.get("accept_then_sleep"):
            time.sleep(float(fake.faults["accept_then_sleep"]))
            if self._stale(generation):
                return None
        if fake.take_fault("accept_then_drop"):
            self.close_connection = True
            self.connection.shutdown(2)  # accepted, but the caller never hears of it
            return None
        return self._json(200, {"error": None, "data": {"video_id": video_id}})

    def _list(self, query: dict):
        """GET /v1/video.list: newest first, `limit` per page, `token` for the next page."""
        if self.fake.take_fault("list_500"):
            return self._error(500, "internal_error", "Internal server error")
        limit = max(1, min(int(query.get("limit", ["100"])[0] or 100), 100))
        start = int(query.get("token", ["0"])[0] or 0)
        with self.fake.lock:
            videos = sorted(self.fake.videos.values(), key=lambda v: v["created_at"], reverse=True)
        page = videos[start : start + limit]
        more = start + limit < len(videos)
        return self._json(200, {"code": 100, "message": "Success", "data": {
            "token": str(start + limit) if more else None,
            "videos": [{"video_id": v["id"], "video_title": v["title"], "status": v["status"],
                        "created_at": int(v["created_at"]), "type": "GENERATED"} for v in page],
        }})  # fmt: skip

    def do_GET(self):
        parts = urlsplit(self.path)
        self.fake.requests_seen.append(f"GET {parts.path}")
        if parts.path.startswith("/files/"):
            return self._serve_file(parts)
        if parts.path.startswith("/previews/"):
            return self._serve_preview(parts.path.removeprefix("/previews/").removesuffix(".svg"))
        if parts.path == "/_fake/stats":
            with self.fake.lock:
                return self._json(200, dict(self.fake.stats))
        if parts.path == "/_fake/renders":  # per render: creation (epoch), R, status calls
            with self.fake.lock:
                renders = [{key: video[key] for key in RENDER_FIGURES}
                           for video in self.fake.videos.values()]  # fmt: skip
            return self._json(200, {"renders": renders})
        if self.fake.faults.get("slow"):
            time.sleep(float(self.fake.faults["slow"]))
        if not self._authorised():
            return None
        if parts.path == "/v1/video_status.get":
            return self._status(parse_qs(parts.query).get("video_id", [""])[0])
        if parts.path == "/v1/video.list":
            return self._list(parse_qs(parts.query))
        if parts.path == "/v2/avatars":
            previews = f"{self.fake.base_url}/previews"
            avatars = [{**{k: v for k, v in avatar.items() if k != "colour"},
                        "preview_image_url": f"{previews}/{avatar['avatar_id']}.svg",
                        "preview_video_url": ""} for avatar in AVATARS]  # fmt: skip
            return self._json(200, {"error": None, "data": {"avatars": avatars,
                                                            "talking_photos": []}})  # fmt: skip
        if parts.path == "/v2/voices":
            voices = [{**voice, "preview_audio": "", "support_pause": True,
                       "emotion_support": False} for voice in VOICES]  # fmt: skip
            return self._json(200, {"error": None, "data": {"voices": voices}})
        if parts.path == "/v2/user/remaining_quota":
            return self._json(200, {"error": None, "data": {
                "remaining_quota": self.fake.remaining_quota,
                "details": {"api": self.fake.remaining_quota}}})  # fmt: skip
        return self._error(404, "not_found", "Not found")

    def _serve_preview(self, avatar_id: str):
        """An avatar's preview image: a small portrait in the avatar's colour."""
        avatar = next((a for a in AVATARS if a["avatar_id"] == avatar_id), None)
        if avatar is None:
            return self._error(404, "not_found", "Not found")
        body = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="90" viewBox="0 0 160 90">'
            f'<rect width="160" height="90" fill="{avatar["colour"]}"/>'
            '<circle cx="80" cy="34" r="16" fill="#fde7d4"/>'
            '<path d="M48 90 Q80 48 112 90 Z" fill="#fde7d4"/></svg>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _status(self, video_id: str):
        fake = self.fake
        if fake.take_fault("status_500"):
            return self._error(500, "internal_error", "Internal server error")
        with fake.lock:
            video = fake.videos.get(video_id)
            if video is None:
                return self._json(404, {"code": 404, "message": "video not found", "data": None})
            video["status_calls"] += 1
            fake.stats["status_calls"] += 1
            finished_now = False
            if fake.render_seconds and video["status"] not in ("completed", "failed"):
                done = time.monotonic() - video["created"] >= fake.render_seconds
                video["status"] = "completed" if done else "processing"
                if done and fake.faults.get("render_failed"):
                    video["status"] = "failed"
                    video["error"] = {"code": 40119, "message": "Video is too long", "detail": ""}
                finished_now = done
            elif video["status"] not in ("completed", "failed"):
                video["polls"] += 1
                step = min(video["polls"] // fake.polls_per_step, len(STEPS) - 1)
                video["status"] = STEPS[step]
                if video["status"] == "completed" and fake.faults.get("render_failed"):
                    video["status"] = "failed"
                    video["error"] = {
                        "code": 40119,
                        "message": "Video is too long",
                        "detail": "The video exceeds the plan's duration limit.",
                    }
                finished_now = video["status"] in ("completed", "failed")
            snapshot = dict(video)
        data = {
            "id": video_id,
            "status": snapshot["status"],
            "callback_id": snapshot["callback_id"],
            "video_url": None,
            "video_url_caption": None,
            "caption_url": None,
            "thumbnail_url": None,
            "gif_url": None,
            "duration": None,
            "created_at": int(time.time()),
            "error": snapshot["error"],
        }
        if snapshot["status"] == "completed" and not fake.faults.get("no_video_url"):
            fake.render(snapshot["script"])
            data["video_url"] = fake.video_url(video_id)
            data["duration"] = RENDER_DURATION_SECONDS
            if not fake.faults.get("no_thumbnail"):
                data["thumbnail_url"] = fake.file_url(video_id, "jpg")
            if snapshot.get("caption") and not fake.faults.get("no_captions"):
                extension = "vtt" if fake.faults.get("vtt_captions") else "srt"
                data["caption_url"] = fake.file_url(video_id, extension)
        if finished_now:
            threading.Thread(target=fake.send_webhook, args=(snapshot,), daemon=True).start()
        return self._json(200, {"code": 100, "message": "Success", "data": data})

    def _serve_companion(self, script: str, extension: str):
        """The render's thumbnail (a real JPEG) or captions (SRT, or WebVTT)."""
        if extension == "jpg":
            body, content_type = self.fake.thumbnail(script), "image/jpeg"
        else:
            body = self.fake.captions(script, vtt=extension == "vtt")
            content_type = "text/vtt" if extension == "vtt" else "application/x-subrip"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _serve_file(self, parts):
        fake = self.fake
        video_id, _, extension = parts.path.removeprefix("/files/").partition(".")
        query = parse_qs(parts.query)
        expires = query.get("Expires", ["0"])[0]
        signature = query.get("Signature", [""])[0]
        valid = expires.isdigit() and hmac.compare_digest(
            fake.sign(video_id, int(expires)), signature
        )
        if not valid or int(expires) < time.time() or video_id not in fake.videos:
            body = b"<Error><Code>AccessDenied</Code></Error>"
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if extension in ("jpg", "srt", "vtt"):
            return self._serve_companion(fake.videos[video_id]["script"], extension)
        if fake.faults.get("html_body"):
            body = b"<!DOCTYPE html><html><body>Video not ready</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        path = Path(fake.faults["serve_file"]) if fake.faults.get("serve_file") else None
        path = path or fake.render(fake.videos[video_id]["script"])
        with fake.lock:
            fake.stats["downloads"] += 1
        size = path.stat().st_size
        to_send = size
        announced = size
        if fake.faults.get("truncated_body"):
            to_send = size // 2
        if fake.faults.get("wrong_content_length"):
            announced = size + 1000
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(announced))
        self.send_header("Connection", "close")
        self.end_headers()
        delay = float(fake.faults.get("slow_download") or 0)
        chunk = 1024 * 1024
        pause = delay / max(1, to_send // chunk + 1) if delay else 0
        sent = 0
        try:
            with path.open("rb") as handle:
                while sent < to_send:
                    data = handle.read(min(chunk, to_send - sent))
                    if not data:
                        break
                    if pause:  # before the bytes, so the client really waits
                        time.sleep(pause)
                    self.wfile.write(data)
                    sent += len(data)
        except (BrokenPipeError, ConnectionResetError):
            return None
        self.close_connection = True
        return None
