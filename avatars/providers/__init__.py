"""Video providers: HeyGen in production, the offline renderer by default."""

from django.conf import settings

from avatars.providers.base import VideoProvider


def get_provider() -> VideoProvider:
    """The provider named by AVATAR_PROVIDER."""
    if settings.AVATAR_PROVIDER == "heygen":
        from avatars.providers.heygen import HeyGenClient

        return HeyGenClient()
    from avatars.providers.local import LocalVideoProvider

    return LocalVideoProvider()
