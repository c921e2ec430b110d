"""Storage backends: Supabase Storage through its S3 endpoint, and local files for development.

Both expose the same two URL behaviours: `url(name)` is the public URL when the bucket is
public, and `signed_url(name, expire)` is an expiring URL that only opens that one object.
"""

import functools
import hashlib
import hmac
import threading
import time
from urllib.parse import urlencode

import boto3
import botocore.loaders
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.urls import reverse
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, is_seekable

from contentstudio.stream_upload import completion_read_timeout, multipart_stream, put_stream

MiB = 1024 * 1024
#: Files in memory up to this size go up in one PutObject on the calling thread.
SMALL_PUT_MAX_BYTES = 8 * MiB


def supabase_client_config(
    *, connect_timeout: float | None = None, read_timeout: float | None = None
) -> Config:
    """The botocore config Supabase's S3 endpoint needs.

    Path-style addressing (the endpoint has a path prefix), SigV4 only (also for presigned
    URLs, which boto3 would otherwise sign with SigV2 in some regions), and checksums only
    when an operation requires one: S3-compatible servers reject or mangle the aws-chunked
    trailer that boto3 >= 1.36 sends by default. django-storages ignores its own
    `addressing_style` / `signature_version` options once `client_config` is set. Timeouts
    default to SUPABASE_S3_CONNECT_TIMEOUT_SECONDS / SUPABASE_S3_READ_TIMEOUT_SECONDS.
    """
    return Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=connect_timeout or settings.SUPABASE_S3_CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout or settings.SUPABASE_S3_READ_TIMEOUT_SECONDS,
        max_pool_connections=16,
    )


def _lift_namespaced_error(parsed=None, **kwargs) -> None:
    """`after-call` handler: Supabase wraps S3 errors in `<Error xmlns="...">`, which botocore
    does not recognise as an error document: it leaves `Error.Code` empty and puts Code and
    Message at the top level. Put them back where ClientError (and its subclasses, such as
    NoSuchKey) reads them, so errors stay specific."""
    if not isinstance(parsed, dict):
        return
    error = parsed.get("Error")
    if not isinstance(error, dict) or error.get("Code"):
        return
    for field in ("Code", "Message"):
        value = parsed.get(field)
        if isinstance(value, str) and value and not error.get(field):
            error[field] = value


def _declare_xml_body(request, **kwargs) -> None:
    """`before-sign` handler for DeleteObjects: boto3 sends its XML body without a
    Content-Type, and Supabase's server parses only text/xml or application/xml bodies."""
    if request.body and "Content-Type" not in request.headers:
        request.headers["Content-Type"] = "application/xml"


def register_supabase_handlers(events) -> None:
    """Teach a boto3 session's or client's event system Supabase's S3 dialect."""
    events.register(
        "after-call.s3", _lift_namespaced_error, unique_id="contentstudio-supabase-error-code"
    )
    events.register(
        "before-sign.s3.DeleteObjects",
        _declare_xml_body,
        unique_id="contentstudio-supabase-delete-objects-type",
    )


def supabase_transfer_config() -> TransferConfig:
    """Multipart settings: 8 MiB parts, at most 3 of a stream's parts in memory (bounded
    memory, download and upload overlapped).

    Videos arrive as non-seekable streams (videostore.storage verifies them while reading), so
    s3transfer must copy each part into memory; `max_in_memory_upload_chunks` parts (default
    10, i.e. 80 MiB) may be queued or uploading at once while the next one is read. 3 parts of
    8 MiB keep a 512 MiB upload near 50 to 57 MiB of peak RSS growth (4 gave 60 to 68 MiB, too
    close to the 64 MiB budget) and upload as fast as a file from disk does with 4 threads;
    bigger parts cost memory, smaller ones cost a request each (benchmarks/RESULTS.md).
    `max_concurrency` bounds seekable uploads. "classic" pins the s3transfer manager: the CRT
    one would ignore these bounds.
    """
    config = TransferConfig(
        multipart_threshold=8 * MiB,
        multipart_chunksize=8 * MiB,
        max_concurrency=4,
        use_threads=True,
        preferred_transfer_client="classic",
    )
    config.max_in_memory_upload_chunks = 3  # an s3transfer option boto3's __init__ hides
    return config


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


_SESSION_LOCK = threading.Lock()


def new_boto3_session(**credentials) -> boto3.Session:
    """A boto3 session whose service models come from one loader per process: each session
    otherwise parses botocore's JSON models again (about 0.12 s of CPU for a resource and a
    client against 0.04 s), and every storage instance and thread makes its own sessions."""
    core = botocore.session.get_session()
    loader = _shared_loader()
    core.register_component("data_loader", loader)
    with _SESSION_LOCK:
        session = boto3.Session(botocore_session=core, **credentials)
        # Each boto3 session appends its data directory to the loader's paths: keep it once.
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


class SupabaseStorage(S3Storage):
    """django-storages' S3 backend pointed at Supabase Storage's S3-compatible endpoint."""

    def get_default_settings(self) -> dict:
        defaults = super().get_default_settings()
        defaults.update(
            {
                "supabase_url": settings.SUPABASE_URL,
                "public_bucket": settings.SUPABASE_BUCKET_PUBLIC,
                "client_config": supabase_client_config(),
                "transfer_config": supabase_transfer_config(),
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": settings.SIGNED_URL_EXPIRES_SECONDS,
                # Keys are never reused (see videostore.storage), so no HEAD per candidate name.
                "file_overwrite": True,
                "max_memory_size": 10 * MiB,
                "object_parameters": {"CacheControl": "max-age=31536000"},
            }
        )
        return defaults

    def _create_session(self):
        """django-storages' session (per thread), on the process's shared model loader; every
        client it makes (signed or not) speaks Supabase's dialect."""
        credentials = (
            {"profile_name": self.session_profile}
            if self.session_profile
            else {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key,
                  "aws_session_token": self.security_token}
        )  # fmt: skip
        session = new_boto3_session(**credentials)
        register_supabase_handlers(session.events)
        return session

    def _save(self, name, content):
        """A stream that announces its length (`size`) goes up in one streamed PUT up to
        SUPABASE_S3_SINGLE_PUT_MAX_BYTES, else in parts sized by its length; a small file in
        memory (a poster, captions) in one PutObject on this thread; anything else through
        django-storages (s3transfer)."""
        length = getattr(content, "size", None)
        if length is not None and length <= SMALL_PUT_MAX_BYTES and is_seekable(content):
            return self._put_small(name, content)
        if length is None or is_seekable(content):
            return super()._save(name, content)
        cleaned_name = clean_name(name)
        key = self._normalize_name(cleaned_name)
        params = self._get_write_parameters(key, content)
        # The call that makes the object answers once the server has it all: its wait grows
        # with the size. The payload is not signed: a stream cannot be read twice.
        timeout = completion_read_timeout(length, self.client_config.read_timeout)
        long_wait = self._client(read_timeout=timeout, payload_signing_enabled=False)
        if length <= settings.SUPABASE_S3_SINGLE_PUT_MAX_BYTES:
            put_stream(long_wait, bucket=self.bucket_name, key=key, body=content,
                       length=length, params=params)  # fmt: skip
        else:
            multipart_stream(self.connection.meta.client, long_wait, bucket=self.bucket_name,
                             key=key, body=content, length=length, params=params)  # fmt: skip
        return cleaned_name

    def _put_small(self, name, content):
        """One PutObject of a small seekable file, signed as a whole, on this thread (not
        through s3transfer's transfer manager and its thread pool)."""
        cleaned_name = clean_name(name)
        key = self._normalize_name(cleaned_name)
        params = self._get_write_parameters(key, content)
        content.seek(0)
        body = content.read()
        self.connection.meta.client.put_object(
            Bucket=self.bucket_name, Key=key,
            Body=body.encode("utf-8") if isinstance(body, str) else body, **params,
        )  # fmt: skip
        return cleaned_name

    def warm_up(self) -> None:
        """Make this thread's clients now (a session and a client cost a few hundred ms of
        CPU, seconds on a busy host), so a long-lived thread's first upload does not pay it."""
        client = self.connection.meta.client  # this thread's session and resource
        # The listing's paginator model: a copy lists its keys first (`stored_sizes`); loaded
        # there, the first copies of every thread at once scan botocore's data folders.
        client.get_paginator("list_objects_v2")
        self._client(read_timeout=self.client_config.read_timeout, payload_signing_enabled=False)

    def _client(self, *, read_timeout: float, payload_signing_enabled: bool):
        """A client of this backend's kind with another read timeout and payload signing,
        kept per thread (a new session and client cost a few hundred ms of CPU)."""
        local = self._connections
        if not hasattr(local, "long_wait_clients"):
            local.long_wait_session = self._create_session()
            local.long_wait_clients = {}
        clients = local.long_wait_clients
        key = (read_timeout, payload_signing_enabled)
        if key not in clients:
            if len(clients) >= 8:  # a few sizes of very large videos: forget the others
                clients.clear()
            s3_options = {**(self.client_config.s3 or {}),
                          "payload_signing_enabled": payload_signing_enabled}  # fmt: skip
            config = self.client_config.merge(Config(read_timeout=read_timeout, s3=s3_options))
            clients[key] = local.long_wait_session.client(
                "s3",
                region_name=self.region_name,
                use_ssl=self.use_ssl,
                endpoint_url=self.endpoint_url,
                config=config,
                verify=self.verify,
            )
        return clients[key]

    def public_url(self, name: str) -> str:
        """Supabase's public object URL: <project>/storage/v1/object/public/<bucket>/<path>."""
        key = self._normalize_name(clean_name(name))
        return (
            f"{self.supabase_url.rstrip('/')}/storage/v1/object/public/"
            f"{self.bucket_name}/{filepath_to_uri(key)}"
        )

    def url(self, name, parameters=None, expire=None, http_method=None) -> str:
        if self.public_bucket and expire is None and not parameters and http_method is None:
            return self.public_url(name)
        return super().url(name, parameters=parameters, expire=expire, http_method=http_method)

    def signed_url(
        self, name: str, expire: int | None = None, *, content_disposition: str = ""
    ) -> str:
        """A SigV4 presigned GET for this one object, valid for `expire` seconds; with
        `content_disposition`, storage answers with that header (a download's name)."""
        parameters = {"ResponseContentDisposition": content_disposition}
        return super().url(name, parameters=parameters if content_disposition else None,
                           expire=expire or self.querystring_expire)  # fmt: skip


def _media_signature(name: str, expires: int, disposition: str = "") -> str:
    key = hashlib.sha256(f"signed-media:{settings.SECRET_KEY}".encode()).digest()
    message = f"{name}\n{expires}" + (f"\n{disposition}" if disposition else "")
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def verify_media_signature(name: str, expires: str, signature: str, disposition: str = "") -> bool:
    """True when `signature` was made for exactly this path (and this Content-Disposition,
    when the link carries one) and has not expired."""
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_at < time.time():
        return False
    expected = _media_signature(name, expires_at, disposition)
    return hmac.compare_digest(expected, signature or "")


class LocalMediaStorage(FileSystemStorage):
    """Files under MEDIA_ROOT, with the same public/signed URL behaviour as Supabase."""

    def __init__(self, public: bool = True, **kwargs):
        self.public_bucket = public
        super().__init__(**kwargs)

    def url(self, name) -> str:
        if self.public_bucket:
            return super().url(name)
        return self.signed_url(name)

    def signed_url(
        self, name: str, expire: int | None = None, *, content_disposition: str = ""
    ) -> str:
        """A URL served by the signed-media view; the HMAC covers the path, the expiry and
        the Content-Disposition the view answers with (a download's name), if any."""
        name = clean_name(name)
        expires = int(time.time()) + int(expire or settings.SIGNED_URL_EXPIRES_SECONDS)
        query = {"expires": expires}
        if content_disposition:
            query["disposition"] = content_disposition
        query["signature"] = _media_signature(name, expires, content_disposition)
        return f"{reverse('signed-media', kwargs={'path': name})}?{urlencode(query)}"
