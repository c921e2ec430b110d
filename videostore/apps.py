from django.apps import AppConfig


class VideoStoreConfig(AppConfig):
    name = "videostore"
    verbose_name = "Stored videos"
