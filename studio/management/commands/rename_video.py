"""Give a video (a lesson) a new title: the studio's rename, from the command line."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from studio.management.commands.generate_avatar_video import lesson_json, print_json
from topics.models import ContentItem
from topics.services import content_item_rename


class Command(BaseCommand):
    help = "Rename a video: --item-id N --title T (the studio's title rule); --json prints it."

    def add_arguments(self, parser):
        parser.add_argument("--item-id", type=int, required=True)
        parser.add_argument("--title", required=True, help="the new title")
        parser.add_argument("--json", action="store_true", help="print the item as JSON")

    def handle(self, *args, **options):
        item = ContentItem.objects.select_related("topic").filter(pk=options["item_id"]).first()
        if item is None:
            raise CommandError(f"Item {options['item_id']} does not exist.", returncode=2)
        try:
            item = content_item_rename(content_item=item, title=options["title"])
        except ValidationError as error:
            raise CommandError(f"--title: {error.messages[0]}", returncode=2) from error
        if options["json"]:
            print_json(self.stdout, lesson_json(item))
        else:
            self.stdout.write(f"{item}: “{item.title}” (position {item.position} in its topic)")
