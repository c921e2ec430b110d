"""Run the whole avatar video pipeline synchronously and print the saved item as JSON."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from avatars.errors import GENERATION_ERRORS
from avatars.jobs import request_avatar_video, run_job_inline
from avatars.models import VideoJob
from topics.models import Topic


class Command(BaseCommand):
    help = "Generate an avatar video for a topic, store it, save it; prints the item as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--topic-id", type=int, required=True)
        parser.add_argument("--script", required=True)
        parser.add_argument("--language", default="")
        parser.add_argument("--avatar-id", default="")
        parser.add_argument("--voice-id", default="")

    def handle(self, *args, **options):
        topic = Topic.objects.filter(pk=options["topic_id"]).first()
        if topic is None:
            raise CommandError(f"Topic {options['topic_id']} does not exist.")
        try:
            job = request_avatar_video(
                topic=topic,
                script=options["script"],
                language=options["language"],
                avatar_id=options["avatar_id"],
                voice_id=options["voice_id"],
                max_attempts=1,
                enqueue_submit=False,
            )
        except GENERATION_ERRORS as error:
            raise CommandError(str(error)) from error
        run_job_inline(job.pk)
        job = VideoJob.objects.select_related("content_item").get(pk=job.pk)
        if job.state == VideoJob.State.FAILED:
            raise CommandError(f"Video generation failed: {job.last_error}")
        item = job.content_item
        payload = {
            "id": item.pk,
            "topic_id": item.topic_id,
            "content_type": item.content_type,
            "status": item.status,
            "job": {"id": job.pk, "state": job.state, "last_error": job.last_error},
            "content_data": item.content_data,
        }
        self.stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False))
