"""Forms of the studio pages. Field rules come from topics.validators and topics.scripts."""

import uuid

from django import forms
from django.core.exceptions import ValidationError

from topics.scripts import (
    SCRIPT_FILE_MAX_BYTES,
    check_script_count,
    check_titles,
    lessons_from_file,
    split_scripts,
)
from topics.validators import (
    LANGUAGE_MAX_CHARS,
    TITLE_MAX_CHARS,
    validate_language_tag,
    validate_script,
    validate_title,
)

LANGUAGE_HELP = "A language code (BCP 47), e.g. en, he, pt-BR."


class TopicForm(forms.Form):
    """A topic's title, language and description (saved by topics.services)."""

    title = forms.CharField(max_length=255)
    language = forms.CharField(max_length=LANGUAGE_MAX_CHARS, initial="en", help_text=LANGUAGE_HELP)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def clean_language(self) -> str:
        return validate_language_tag(self.cleaned_data["language"])


def check_script_length(scripts: list[str]) -> list[str]:
    """Every script within the provider's limit (the one script rule, topics/validators.py)."""
    for number, script in enumerate(scripts, start=1):
        validate_script(script, label="The script" if len(scripts) == 1 else f"Script {number}")
    return scripts


class GenerateAvatarVideoForm(forms.Form):
    """What an author asks for: one video per script block, or per script of a file."""

    script = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        label="Script",
        help_text="What the avatar says. Several videos at once: separate the scripts with a "
        "blank line.",
    )
    scripts_file = forms.FileField(
        required=False,
        label="Or a scripts file",
        help_text=".txt (scripts separated by a blank line) or .csv (one script per row; "
        "titles from a title column).",
    )
    language = forms.CharField(max_length=LANGUAGE_MAX_CHARS, help_text=LANGUAGE_HELP)
    avatar_id = forms.CharField(max_length=128, required=False, help_text="Blank: the default.")
    voice_id = forms.CharField(max_length=128, required=False, help_text="Blank: the default.")
    # One per rendered form: posting the same form twice queues its videos once.
    request_token = forms.UUIDField(widget=forms.HiddenInput, required=False, initial=uuid.uuid4)

    def clean_scripts_file(self) -> list[tuple[str, str]]:
        upload = self.cleaned_data.get("scripts_file")
        if not upload:
            return []
        # The cap plus one byte is enough to refuse a larger file; never read it whole.
        return lessons_from_file(upload.name, upload.read(SCRIPT_FILE_MAX_BYTES + 1))

    def clean_language(self) -> str:
        return validate_language_tag(self.cleaned_data["language"])

    def clean(self) -> dict:
        cleaned = super().clean()
        if "scripts_file" in self.errors:
            return cleaned
        lessons = [(script, "") for script in split_scripts(cleaned.get("script", ""))]
        lessons += cleaned.get("scripts_file", [])
        try:
            cleaned["scripts"] = check_script_length(check_script_count([s for s, _ in lessons]))
            cleaned["titles"] = check_titles([title for _, title in lessons])
        except ValidationError as error:
            self.add_error("script", error)
        return cleaned


class VideoTitleForm(forms.Form):
    """A video's new title (saved by topics.services.content_item_rename)."""

    title = forms.CharField(max_length=TITLE_MAX_CHARS, label="Title")

    def clean_title(self) -> str:
        return validate_title(self.cleaned_data["title"])
