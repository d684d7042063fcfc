from datetime import datetime, timedelta, timezone

from django import template
from django.utils.timesince import timeuntil

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration in words, as ``timeuntil`` writes them: "30 minutes", "12 hours"."""
    if value is None:
        return ""
    now = datetime.now(tz=timezone.utc)
    return timeuntil(now + value, now)
