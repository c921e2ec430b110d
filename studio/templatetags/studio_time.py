"""Times as people read them on the studio's pages: "2 min ago", the full date on hover."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html

from studio.status import format_ago

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> str:
    """<time> saying "2 min ago", with the full date in its tooltip."""
    if not moment:
        return ""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        date_format(local, "j F Y, H:i T"),
        format_ago(moment, timezone.now()),
    )
