"""Typed errors of the avatar video pipeline. Each message is one sentence a person can act on."""

from videostore.errors import VideoStoreError


class AvatarVideoError(Exception):
    """Base class; `str(error)` is shown to people, so it never carries secrets or signed URLs."""

    #: True when trying again later may succeed (network, 5xx, storage outage).
    retryable = False


class ProviderError(AvatarVideoError):
    """The video provider refused or failed a request."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or kept failing (5xx, timeouts) past the retries."""

    retryable = True


class SubmissionOutcomeUnknown(ProviderUnavailable):
    """A create call was sent but its answer never came (timeout, connection lost): the
    provider may have accepted it. Never sent again blindly: looked up first."""


class AuthenticationFailed(ProviderError):
    """The provider rejected the API key."""


class QuotaExceeded(ProviderError):
    """No credits or over a rate/trial limit."""

    retryable = True


class RenderSlotsBusy(ProviderError):
    """The provider is rate limiting or every concurrent render slot is taken (HTTP 429 that is
    not a quota): the job waits and submits again later instead of sleeping in a worker."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        #: Seconds the provider asked us to wait (its Retry-After), when it said.
        self.retry_after = retry_after


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


class AlreadyQueued(AvatarVideoError):
    """A generate form was posted twice (same token): nothing new was queued; `jobs` are the
    first post's."""

    def __init__(self, message: str, *, jobs: list):
        super().__init__(message)
        self.jobs = jobs


#: What a generation step may raise and handle as "this video failed or must wait": the
#: provider's errors and the stored-video lifecycle's.
GENERATION_ERRORS: tuple[type[Exception], ...] = (AvatarVideoError, VideoStoreError)
