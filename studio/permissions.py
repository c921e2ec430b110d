"""Each permission the studio and the admin check, named once (the admin's model permissions),
and what a person is told when one is missing."""

from functools import wraps

from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied

ADD_TOPIC = "topics.add_topic"
CHANGE_TOPIC = "topics.change_topic"
DELETE_TOPIC = "topics.delete_topic"
VIEW_VIDEOS = "topics.view_contentitem"
GENERATE = "topics.add_contentitem"
REGENERATE = "topics.regenerate_contentitem"
CHANGE_VIDEO = "topics.change_contentitem"  # rename a video, move it within its topic
DELETE_VIDEO = "topics.delete_contentitem"
VIEW_JOBS = "avatars.view_videojob"


def missing(*permissions: str) -> PermissionDenied:
    """The 403 for a user who holds none of `permissions`: names them as the admin lists
    them, and says who can grant them."""
    names = []
    for permission in permissions:
        app_label, codename = permission.split(".", 1)
        found = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        name = found.values_list("name", flat=True).first() or codename
        names.append(f"“{name}” ({permission})")
    return PermissionDenied(
        f"This needs the permission {' or '.join(names)}. Ask an administrator to grant it."
    )


def require(*permissions: str):
    """A view for users holding any of `permissions` (log in first); else a 403 that names
    the missing permission."""

    def decorator(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if not any(request.user.has_perm(permission) for permission in permissions):
                raise missing(*permissions)
            return view(request, *args, **kwargs)

        return checked

    return decorator
