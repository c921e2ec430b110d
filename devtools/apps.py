from django.apps import AppConfig


class DevToolsConfig(AppConfig):
    """Test and demo tools (the fake HeyGen server); production settings do not install it."""

    name = "devtools"
    verbose_name = "Development tools"
