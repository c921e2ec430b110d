"""What the provider offers this account, read before anything is spent: the remaining
quota (cached briefly: a preview and its Confirm ask once, not twice), the avatars and the
voices (cached with a time to live; voices for a topic's language). The offline renderer
spends nothing, has no quota and its own small lists."""

import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.conf.locale import LANG_INFO
from django.core.cache import cache

from avatars.errors import ProviderError, QuotaExceeded
from avatars.providers.base import Avatar, Voice
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


#: How long the provider's avatars and voices are reused.
CATALOG_CACHE_SECONDS = 600
#: The offline renderer's own lists: a title card, read by a tone.
OFFLINE_AVATARS = [Avatar(id="offline-title-card", name="Title card (offline renderer)")]
OFFLINE_VOICES = [Voice(id="offline-tone", name="Tone (offline renderer)", language="")]


def _cached_listing(name: str, read):
    key = f"heygen-{name}:{settings.HEYGEN_API_BASE}"
    entries = cache.get(key)
    if entries is None:
        entries = read()
        cache.set(key, entries, CATALOG_CACHE_SECONDS)
    return entries


def avatars() -> list[Avatar]:
    """The avatars a render may use (ProviderError when HeyGen does not answer)."""
    if settings.AVATAR_PROVIDER != "heygen":
        return OFFLINE_AVATARS
    return _cached_listing("avatars", lambda: HeyGenClient().list_avatars())


def speaks(voice: Voice, language: str) -> bool:
    """Does the voice speak the topic's language (a BCP 47 tag; HeyGen names languages)?"""
    if not voice.language:
        return True
    base = language.split("-")[0].lower()
    name = LANG_INFO.get(base, {}).get("name", "").lower()
    spoken = voice.language.lower()
    return spoken == base or spoken.startswith(base + "-") or bool(name and name in spoken)


def voices(language: str) -> list[Voice]:
    """The voices that speak `language` (ProviderError when HeyGen does not answer)."""
    if settings.AVATAR_PROVIDER != "heygen":
        return OFFLINE_VOICES
    listing = _cached_listing("voices", lambda: HeyGenClient().list_voices())
    return [voice for voice in listing if speaks(voice, language)]
