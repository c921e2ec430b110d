from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    name = "avatars"
    verbose_name = "Avatar videos"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from avatars.heartbeats import workers_spawned

        post_spawn.connect(workers_spawned, dispatch_uid="avatars-workers-heartbeat")
        post_spawn.connect(_warm_worker, dispatch_uid="avatars-worker-warm-up")


def _warm_worker(sender, proc_name: str, **kwargs) -> None:
    """django-q2's post_spawn, in a new worker: make its copy path ready before its first
    task (imported here, not at start-up: other commands need none of it)."""
    from avatars.jobs import warm_up_worker

    warm_up_worker(proc_name)
