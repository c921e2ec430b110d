"""Field rules of the topics domain, defined once and used by every door (model, forms,
admin, services, commands)."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

#: A BCP 47 language tag as course authors write them: a 2-3 letter language, then optional
#: script (4 letters), region (2 letters or 3 digits) and variants, separated by hyphens.
_LANGUAGE_TAG = re.compile(
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)
LANGUAGE_MAX_CHARS = 16


def validate_language_tag(value: str) -> str:
    """Return the tag if it is a BCP 47 language tag such as en, he, pt-BR or zh-Hant-TW."""
    tag = (value or "").strip()
    if len(tag) > LANGUAGE_MAX_CHARS or not _LANGUAGE_TAG.match(tag):
        raise ValidationError(
            "Use a language code (BCP 47) such as en, he or pt-BR.", code="invalid_language"
        )
    return tag


def validate_script(script: str, *, label: str = "The script") -> str:
    """The script stripped, if it is not empty and within the provider's limit
    (AVATAR_SCRIPT_MAX_CHARS); a ValidationError in one sentence otherwise."""
    script = (script or "").strip()
    if not script:
        raise ValidationError(
            f"{label} is empty; write what the avatar should say.", code="empty_script"
        )
    limit = settings.AVATAR_SCRIPT_MAX_CHARS
    if len(script) > limit:
        raise ValidationError(
            f"{label} has {len(script)} characters; the limit is {limit}.", code="long_script"
        )
    return script
