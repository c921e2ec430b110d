"""The Supabase backend against a real S3 server over HTTP, and the local backend."""

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages

from contentstudio.storage import LocalMediaStorage, SupabaseStorage, supabase_client_config
from tests.conftest import BUCKET
from tests.servers import TEST_SECRET_KEY, S3Server, supabase_storage_settings
from videostore.errors import StorageUnavailable
from videostore.storage import VideoStorage

ROOT = Path(__file__).resolve().parent.parent


def test_default_storage_is_the_supabase_backend_pointed_at_the_s3_server(s3_server):
    assert isinstance(default_storage, SupabaseStorage)
    assert default_storage.endpoint_url == s3_server.endpoint


def test_mp4_round_trip_through_supabase_backend(sample_mp4, bucket_keys):
    name = "avatar_videos/avatar_roundtrip.mp4"
    with sample_mp4.open("rb") as fh:
        saved = default_storage.save(name, File(fh))
    assert saved == name
    assert bucket_keys() == [name]
    assert default_storage.size(name) == sample_mp4.stat().st_size

    assert default_storage.url(name) == (
        f"https://test-project.supabase.co/storage/v1/object/public/{BUCKET}/{name}"
    )
    signed = default_storage.signed_url(name, expire=600)
    assert "X-Amz-Signature=" in signed and "X-Amz-Expires=600" in signed
    response = requests.get(signed, timeout=10)
    assert response.status_code == 200
    assert response.content == sample_mp4.read_bytes()

    default_storage.delete(name)
    assert not default_storage.exists(name)
    assert bucket_keys() == []


def test_private_bucket_url_is_signed_and_downloads(settings, s3_server, sample_mp4):
    for key, value in supabase_storage_settings(s3_server, BUCKET, public=False).items():
        setattr(settings, key, value)
    storage = storages["default"]
    name = storage.save("avatar_videos/private.mp4", ContentFile(sample_mp4.read_bytes()))
    url = storage.url(name)
    assert "X-Amz-Signature=" in url
    assert "/storage/v1/object/public/" not in url
    assert requests.get(url, timeout=10).content == sample_mp4.read_bytes()


def test_presigned_urls_use_sigv4_not_sigv2(sample_mp4):
    default_storage.save("avatar_videos/sig.mp4", ContentFile(b"x" * 10))
    url = default_storage.signed_url("avatar_videos/sig.mp4", expire=60)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "AWSAccessKeyId=" not in url


@pytest.mark.parametrize("size", [1024, 9 * 1024 * 1024], ids=["single-put", "multipart"])
def test_client_sends_no_aws_chunked_trailer_or_checksum_headers(size):
    """Supabase (and other S3-compatible servers) choke on boto3's default checksum trailer."""
    sent = []
    client = default_storage.connection.meta.client
    # django-storages' multipart path goes through the storage's cached Bucket, whose client
    # is the one of the thread that first used it (maybe another test's worker thread).
    clients = {id(c): c for c in (client, default_storage.bucket.meta.client)}.values()

    def capture(request, **kwargs):
        sent.append(dict(request.headers))

    for each in clients:
        each.meta.events.register("before-send.s3", capture)
    try:
        default_storage.save(f"avatar_videos/chk_{size}.bin", ContentFile(os.urandom(size)))
    finally:
        for each in clients:
            each.meta.events.unregister("before-send.s3", capture)

    uploads = [h for h in sent if "Content-Length" in h or "x-amz-trailer" in h]
    assert uploads, "no upload request was captured"
    for headers in sent:
        lowered = {k.lower(): str(v) for k, v in headers.items()}
        assert "aws-chunked" not in lowered.get("content-encoding", "")
        assert "x-amz-trailer" not in lowered
        assert "x-amz-decoded-content-length" not in lowered
        assert not any(k.startswith("x-amz-checksum-") for k in lowered)
        assert "x-amz-sdk-checksum-algorithm" not in lowered
        assert "STREAMING" not in lowered.get("x-amz-content-sha256", "")
    config = client.meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.s3["addressing_style"] == "path"
    assert config.signature_version == "s3v4"


def test_local_storage_public_url_and_signed_url(client, local_storage, sample_mp4):
    assert isinstance(local_storage, LocalMediaStorage)
    name = local_storage.save("avatar_videos/local.mp4", ContentFile(sample_mp4.read_bytes()))
    assert local_storage.url(name) == "/media/avatar_videos/local.mp4"
    assert b"".join(client.get(local_storage.url(name)).streaming_content) == (
        sample_mp4.read_bytes()
    )

    signed = local_storage.signed_url(name, expire=60)
    response = client.get(signed)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == sample_mp4.read_bytes()


def test_local_signed_url_cannot_be_widened_to_another_path(client, local_storage):
    local_storage.save("avatar_videos/a.mp4", ContentFile(b"a"))
    local_storage.save("avatar_videos/b.mp4", ContentFile(b"b"))
    signed = local_storage.signed_url("avatar_videos/a.mp4", expire=60)
    assert client.get(signed.replace("/a.mp4", "/b.mp4")).status_code == 403
    assert client.get(signed.split("?")[0]).status_code == 403


def test_local_signed_url_expires(client, local_storage, monkeypatch):
    local_storage.save("avatar_videos/e.mp4", ContentFile(b"e"))
    signed = local_storage.signed_url("avatar_videos/e.mp4", expire=30)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 31)
    assert client.get(signed).status_code == 403


def test_private_local_bucket_hides_public_path(client, local_storage, settings):
    settings.STORAGES = {
        "default": {
            "BACKEND": "contentstudio.storage.LocalMediaStorage",
            "OPTIONS": {"public": False},
        },
        "staticfiles": settings.STORAGES["staticfiles"],
    }
    storage = storages["default"]
    storage.save("avatar_videos/p.mp4", ContentFile(b"p"))
    assert client.get("/media/avatar_videos/p.mp4").status_code == 404
    assert "signature=" in storage.url("avatar_videos/p.mp4")


def _manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SUPABASE_"))}
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _manage(
        {
            "DJANGO_SECRET_KEY": "prod-" + "k" * 60,
            "DJANGO_ALLOWED_HOSTS": "studio.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/contentstudio",
            "SUPABASE_URL": "https://abcd.supabase.co",
            "SUPABASE_S3_ACCESS_KEY_ID": "key-id",
            "SUPABASE_S3_SECRET_ACCESS_KEY": "secret",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_a_secret_key_a_private_random_key_file_is_used(tmp_path):
    key_file = tmp_path / "secret"
    env = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY_FILE": str(key_file)}
    probe = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = _manage(env, "shell", "-c", probe)
    second = _manage(env, "shell", "-c", probe)
    assert first.returncode == 0, first.stderr
    key = key_file.read_text().strip()
    assert len(key) >= 50 and key in first.stdout and key in second.stdout
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


# --- Supabase's S3 dialect: namespaced error documents, DeleteObjects needs a Content-Type ---

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def supabase_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error xmlns="{S3_NS}"><Code>{code}</Code>'
        f"<Message>{message}</Message><Resource>{BUCKET}/x</Resource></Error>"
    ).encode()


class SupabaseLikeServer:
    """A loopback HTTP server answering every S3 call as Supabase's storage server answers an
    error: `answers[method] = (status, code, message)`, the body wrapped in a namespaced
    `<Error xmlns=...>` (HEAD: no body). DeleteObjects without an XML Content-Type gets 400
    InvalidRequest, as Supabase answers. It records (method, path, Content-Type)."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]):
        self.answers = answers
        self.seen: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                content_type = self.headers.get("Content-Type")
                server.seen.append((self.command, self.path, content_type))
                status, code, message = server.answers[self.command]
                if self.path.endswith("?delete"):
                    if content_type not in ("application/xml", "text/xml"):
                        status, code, message = 400, "InvalidRequest", "Invalid body"
                    else:
                        status, code, message = 200, "", ""
                body = b"" if self.command == "HEAD" or not code else supabase_error(code, message)
                if status == 200 and self.path.endswith("?delete"):
                    body = f'<DeleteResult xmlns="{S3_NS}"></DeleteResult>'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


NOT_FOUND = {method: (404, "NoSuchKey", "Object not found") for method in
             ("GET", "PUT", "POST", "DELETE", "HEAD")}  # fmt: skip


@pytest.fixture
def supabase_like(settings):
    """Point the production backend at a Supabase-like server; call with its answers."""
    servers: list[SupabaseLikeServer] = []

    def start(answers: dict) -> SupabaseLikeServer:
        server = SupabaseLikeServer(answers)
        servers.append(server)
        stub = S3Server(port=server.port)  # only its endpoint: nothing is started
        for key, value in supabase_storage_settings(stub, BUCKET).items():
            setattr(settings, key, value)
        # One attempt: a 5xx is not retried for seconds in a test.
        options = settings.STORAGES["default"]["OPTIONS"]
        options["client_config"] = supabase_client_config().merge(
            Config(retries={"max_attempts": 1, "mode": "standard"})
        )
        return server

    yield start
    for server in servers:
        server.close()


def test_botocore_alone_reads_supabase_errors_as_an_empty_code(supabase_like):
    server = supabase_like(NOT_FOUND)
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id="a", aws_secret_access_key="b",
                          config=supabase_client_config())  # fmt: skip
    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=BUCKET, Key="avatar_videos/x.mp4")
    assert raised.value.response["Error"]["Code"] == ""  # why the backend teaches botocore


def test_the_backend_keeps_supabase_error_codes_specific(supabase_like):
    supabase_like(NOT_FOUND)
    client = default_storage.connection.meta.client
    with pytest.raises(client.exceptions.NoSuchKey) as raised:
        client.get_object(Bucket=BUCKET, Key="avatar_videos/x.mp4")
    assert raised.value.response["Error"] == {"Code": "NoSuchKey", "Message": "Object not found"}


def test_a_missing_object_on_supabase_is_missing_not_an_outage(supabase_like):
    server = supabase_like(NOT_FOUND)
    path = "avatar_videos/avatar_missing_00000000.mp4"
    video_storage = VideoStorage()
    video_storage.delete_video(path)  # idempotent: nothing to delete is fine
    assert video_storage.size(path) is None
    assert video_storage.exists(path) is False
    assert [method for method, _, _ in server.seen] == ["DELETE", "HEAD", "HEAD"]


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "AccessDenied", r"^Storage refused access \(AccessDenied, HTTP 403\); check the S3"),
        (404, "NoSuchBucket", r"^Storage has no such bucket or object \(NoSuchBucket, HTTP 404\)"),
        (500, "InternalError", r"^Storage is unavailable: it is failing \(InternalError, HTTP 500"),
        (503, "SlowDown", r"^Storage is unavailable: it is failing \(SlowDown, HTTP 503\)"),
    ],
)
def test_supabase_errors_read_right_in_errors_and_logs(
    supabase_like, sample_mp4, caplog, status, code, expected
):
    supabase_like({method: (status, code, "no") for method in NOT_FOUND} | {"HEAD": (404, "", "")})
    with pytest.raises(StorageUnavailable, match=expected) as raised:
        with sample_mp4.open("rb") as stream:
            VideoStorage().upload_video(stream, "a.mp4")
    assert TEST_SECRET_KEY not in str(raised.value)
    logged = [r.getMessage() for r in caplog.records if r.name == "videostore.storage"]
    assert any(f"{code}, HTTP {status}" in line and "avatar_videos/" in line for line in logged)


@pytest.mark.parametrize("status", [403, 500])
def test_listing_and_deleting_map_supabase_errors_by_status(supabase_like, status):
    supabase_like({method: (status, "", "") for method in NOT_FOUND})  # no code at all
    meaning = "refused access" if status == 403 else "unavailable: it is failing"
    with pytest.raises(StorageUnavailable, match=rf"{meaning} \(HTTP {status}\)"):
        list(VideoStorage().iter_objects())
    with pytest.raises(StorageUnavailable, match=rf"{meaning} \(HTTP {status}\)"):
        VideoStorage().delete_video("avatar_videos/avatar_x_00000000.mp4")


def test_batch_deletes_send_a_content_type_supabase_accepts(supabase_like):
    server = supabase_like(NOT_FOUND)
    objects = {"Objects": [{"Key": "avatar_videos/a.mp4"}, {"Key": "avatar_videos/b.mp4"}]}
    default_storage.connection.meta.client.delete_objects(Bucket=BUCKET, Delete=objects)
    S3Server(port=server.port).client().delete_objects(Bucket=BUCKET, Delete=objects)
    assert [seen[2] for seen in server.seen] == ["application/xml", "application/xml"]
