"""Field rules of the topics domain, defined once and used by every door (model, forms,
admin, services, commands)."""

import re

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
