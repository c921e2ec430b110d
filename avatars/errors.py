"""Typed errors of the avatar video pipeline. Each message is one sentence a person can act on."""


class AvatarVideoError(Exception):
    """Base class; `str(error)` is shown to people, so it never carries secrets or signed URLs."""

    #: True when trying again later may succeed (network, 5xx, storage outage).
    retryable = False


class ProviderError(AvatarVideoError):
    """The video provider refused or failed a request."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or kept failing (5xx, timeouts) past the retries."""

    retryable = True


class AuthenticationFailed(ProviderError):
    """The provider rejected the API key."""


class QuotaExceeded(ProviderError):
    """No credits or over a rate/trial limit."""

    retryable = True


class InvalidAvatarOrVoice(ProviderError):
    """The avatar or voice id does not exist or may not be used."""


class InvalidRequest(ProviderError):
    """The provider rejected the request's parameters (script, dimension...)."""


class RenderFailed(ProviderError):
    """The provider accepted the job but the render failed; carries the provider's message."""


class RenderTimeout(ProviderError):
    """The render did not finish within the deadline."""

    retryable = True


class DownloadError(AvatarVideoError):
    """The rendered video could not be downloaded (refused URL, HTTP error, broken stream)."""

    retryable = True


class DownloadNotAllowed(DownloadError):
    """The download URL is not https on an allowed host, or resolves to a private address."""

    retryable = False


class InvalidVideo(AvatarVideoError):
    """The bytes are not an acceptable MP4 (wrong type, truncated, wrong length, too large)."""


class StorageUnavailable(AvatarVideoError):
    """Object storage could not be reached or refused the operation."""

    retryable = True


class InvalidContentData(ValueError):
    """content_data for an item is malformed; the message names the field."""
