"""The admin for every app's models, in one place at the edge (read-only where services write)."""

from studio.admin import avatars, topics, videostore  # noqa: F401  (registers the model admins)
