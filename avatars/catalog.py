"""What the provider offers this account, read before anything is spent: the remaining
quota (cached briefly: a preview and its Confirm ask once, not twice). The offline renderer
spends nothing and has no quota."""

import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from avatars.errors import ProviderError, QuotaExceeded
from avatars.providers.heygen import HeyGenClient

logger = logging.getLogger(__name__)

#: How long a read of the remaining quota is reused.
QUOTA_CACHE_SECONDS = 30
#: HeyGen counts its quota in seconds of video; 60 make one credit.
SECONDS_PER_CREDIT = 60


@dataclass(frozen=True)
class Quota:
    """The provider's remaining quota (seconds of video), or why it is unknown."""

    remaining_seconds: int | None
    error: str = ""

    @property
    def credits(self) -> int | None:
        if self.remaining_seconds is None:
            return None
        return self.remaining_seconds // SECONDS_PER_CREDIT

    def covers(self, needed_seconds: int) -> bool:
        """Unknown counts as enough: the provider refuses a render it cannot pay for."""
        return self.remaining_seconds is None or needed_seconds <= self.remaining_seconds


def credits_for(seconds: int) -> int:
    """The credits `seconds` of video use (each started minute)."""
    return math.ceil(seconds / SECONDS_PER_CREDIT)


def _cache_key() -> str:
    return f"heygen-remaining-quota:{settings.HEYGEN_API_BASE}"


def remaining_quota(*, fresh: bool = False) -> Quota | None:
    """The provider's remaining quota (None: the offline renderer, nothing to spend), read
    at most every QUOTA_CACHE_SECONDS (`fresh`: now)."""
    if settings.AVATAR_PROVIDER != "heygen":
        return None
    seconds = None if fresh else cache.get(_cache_key())
    if seconds is None:
        try:
            seconds = HeyGenClient().remaining_quota()
        except ProviderError as error:
            logger.warning("remaining quota unknown: %s", error)
            return Quota(None, error=str(error))
        cache.set(_cache_key(), seconds, QUOTA_CACHE_SECONDS)
    return Quota(seconds)


def check_quota(needed_seconds: int, *, fresh: bool = False) -> Quota | None:
    """The remaining quota when it covers `needed_seconds`; QuotaExceeded (one sentence)
    when the batch needs more than remains."""
    quota = remaining_quota(fresh=fresh)
    if quota is not None and not quota.covers(needed_seconds):
        raise QuotaExceeded(
            f"These videos need about {credits_for(needed_seconds)} credit(s) "
            f"({needed_seconds} s of video) and HeyGen has {quota.credits} left "
            f"({quota.remaining_seconds} s): remove some scripts or add credits."
        )
    return quota


def forget_quota() -> None:
    """After renders were requested: the next read asks the provider again."""
    cache.delete(_cache_key())
