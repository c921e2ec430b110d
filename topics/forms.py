"""Forms of the studio pages."""

from django import forms
from django.conf import settings

from topics.validators import validate_language_tag


class GenerateAvatarVideoForm(forms.Form):
    """What an author asks for; the limits match the provider's."""

    script = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="What the avatar says.",
    )
    language = forms.CharField(max_length=16, help_text="e.g. en, he, ar")
    avatar_id = forms.CharField(max_length=128, required=False, help_text="Blank: the default.")
    voice_id = forms.CharField(max_length=128, required=False, help_text="Blank: the default.")

    def clean_script(self) -> str:
        script = self.cleaned_data["script"].strip()
        limit = settings.AVATAR_SCRIPT_MAX_CHARS
        if len(script) > limit:
            raise forms.ValidationError(
                f"The script has {len(script)} characters; the limit is {limit}."
            )
        return script

    def clean_language(self) -> str:
        return validate_language_tag(self.cleaned_data["language"])
