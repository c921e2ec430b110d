from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    name = "avatars"
    verbose_name = "Avatar videos"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from avatars.heartbeats import workers_spawned

        post_spawn.connect(workers_spawned, dispatch_uid="avatars-workers-heartbeat")
