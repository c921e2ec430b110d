"""Load a demo topic and, on a fresh embedded install, a local admin account."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from topics.models import Topic
from topics.services import topic_create

DEMO_TOPICS = [
    ("Photosynthesis basics", "en", "How plants turn light, water and carbon dioxide into sugar."),
    ("פוטוסינתזה למתחילים", "he", "איך צמחים הופכים אור, מים ופחמן דו-חמצני לסוכר."),
]


class Command(BaseCommand):
    help = "Create the demo topics (idempotent); with DJANGO_DEBUG on, also an admin/admin user."

    def handle(self, *args, **options):
        for title, language, description in DEMO_TOPICS:
            if not Topic.objects.filter(title=title).exists():
                topic_create(title=title, language=language, description=description)
                self.stdout.write(f"Created demo topic: {title}")
        user_model = get_user_model()
        if settings.DEBUG and not user_model.objects.filter(is_superuser=True).exists():
            user_model.objects.create_superuser("admin", "admin@example.com", "admin")
            self.stdout.write("Created local superuser admin / admin (DJANGO_DEBUG only).")
