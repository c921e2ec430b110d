"""Forms of the studio pages. Field rules come from topics.validators and topics.scripts."""

import uuid

from django import forms
from django.core.exceptions import ValidationError

from topics.scripts import SCRIPT_FILE_MAX_BYTES, check_batch, decode_scripts_file, parse_batch
from topics.validators import (
    LANGUAGE_MAX_CHARS,
    TITLE_MAX_CHARS,
    validate_language_tag,
    validate_plain_text,
    validate_title,
)

LANGUAGE_HELP = "A language code (BCP 47), e.g. en, he, pt-BR."


class TopicForm(forms.Form):
    """A topic's title, language and description (saved by topics.services)."""

    title = forms.CharField(
        max_length=255, help_text="What the course is about, as learners see it."
    )
    language = forms.CharField(max_length=LANGUAGE_MAX_CHARS, initial="en", help_text=LANGUAGE_HELP)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                  help_text="Optional; shown under the title.")  # fmt: skip

    default_avatar_id = forms.ChoiceField(
        required=False, label="Avatar", widget=forms.RadioSelect,
        help_text="Who presents this topic's videos.",
    )  # fmt: skip
    default_voice_id = forms.ChoiceField(
        required=False, label="Voice", widget=forms.RadioSelect,
        help_text="Voices that speak the topic's language.",
    )  # fmt: skip

    def __init__(self, *args, avatars=(), voices=(), **kwargs):
        """`avatars`, `voices`: (id, label) the provider offers; the current value stays
        offered even when the provider's list no longer holds it."""
        super().__init__(*args, **kwargs)
        for name, offered in (("default_avatar_id", avatars), ("default_voice_id", voices)):
            current = self.data.get(name) if self.is_bound else self.initial.get(name)
            choices = [("", "The provider's default"), *offered]
            if current and current not in {value for value, _ in choices}:
                choices.append((current, current))
            self.fields[name].choices = choices

    def clean_language(self) -> str:
        return validate_language_tag(self.cleaned_data["language"])


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
    avatar_id = forms.CharField(max_length=128, required=False,
                                help_text="Blank: the topic's avatar (Edit topic).")  # fmt: skip
    voice_id = forms.CharField(max_length=128, required=False,
                               help_text="Blank: the topic's voice (Edit topic).")  # fmt: skip
    # One per rendered form: posting the same form twice queues its videos once.
    request_token = forms.UUIDField(widget=forms.HiddenInput, required=False, initial=uuid.uuid4)

    def clean_scripts_file(self) -> tuple[str, str] | None:
        """(suffix, text) of the uploaded file, None without one."""
        upload = self.cleaned_data.get("scripts_file")
        if not upload:
            return None
        # The cap plus one byte is enough to refuse a larger file; never read it whole.
        return decode_scripts_file(upload.name, upload.read(SCRIPT_FILE_MAX_BYTES + 1))

    def clean_language(self) -> str:
        return validate_language_tag(self.cleaned_data["language"])

    def clean_script(self) -> str:
        """Control characters refused by the scripts file's rule (topics.validators)."""
        script = self.cleaned_data.get("script", "")
        validate_plain_text(script, label="The script")
        return script

    def clean(self) -> dict:
        cleaned = super().clean()
        if "scripts_file" in self.errors or "script" in self.errors:
            return cleaned
        suffix, text = cleaned.get("scripts_file") or ("", None)
        try:
            batch = check_batch(parse_batch(text=cleaned.get("script", ""), file_text=text,
                                            file_suffix=suffix))  # fmt: skip
        except ValidationError as error:
            self.add_error("script", error)
            return cleaned
        # What Confirm re-reads: the same text, read by the same rule.
        cleaned.update(batch=batch, scripts=batch.scripts, titles=batch.titles,
                       source_text=cleaned.get("script", "") if text is None else text,
                       source_suffix=suffix)  # fmt: skip
        return cleaned


class ConfirmGenerateForm(forms.Form):
    """Confirm after the preview: the submitted text (the script box's, or the file's)
    comes back as it was and is read again by the same rule; only if it still makes exactly
    the videos previewed (`digest`) are they requested."""

    source_text = forms.CharField(widget=forms.HiddenInput, strip=False)
    source_suffix = forms.ChoiceField(choices=[("", "script box"), (".txt", ".txt"),
                                               (".csv", ".csv")], required=False)  # fmt: skip
    digest = forms.CharField(widget=forms.HiddenInput, max_length=64)
    # The generate form's token, carried to the one request that renders.
    request_token = forms.UUIDField(widget=forms.HiddenInput, required=False)
    language = forms.CharField(max_length=LANGUAGE_MAX_CHARS)
    avatar_id = forms.CharField(max_length=128, required=False)
    voice_id = forms.CharField(max_length=128, required=False)

    def clean_language(self) -> str:
        return validate_language_tag(self.cleaned_data["language"])

    def clean(self) -> dict:
        cleaned = super().clean()
        if "source_text" not in cleaned:
            return cleaned
        suffix = cleaned.get("source_suffix", "")
        text = cleaned["source_text"]
        batch = check_batch(parse_batch(text="" if suffix else text,
                                        file_text=text if suffix else None,
                                        file_suffix=suffix))  # fmt: skip
        if batch.digest != cleaned.get("digest"):
            raise ValidationError("The scripts changed since the preview; check them again.",
                                  code="stale_preview")  # fmt: skip
        cleaned.update(batch=batch, scripts=batch.scripts, titles=batch.titles)
        return cleaned


class VideoTitleForm(forms.Form):
    """A video's new title (saved by topics.services.content_item_rename)."""

    title = forms.CharField(max_length=TITLE_MAX_CHARS, label="Title")

    def clean_title(self) -> str:
        return validate_title(self.cleaned_data["title"])
