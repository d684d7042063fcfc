"""Template tags and filters of the session pages: ``{% load secure_sessions %}``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.urls import get_script_prefix
from django.utils import formats, timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext

register = template.Library()

# Under this, Django's timesince says "0 minutes".
JUST_NOW = timedelta(minutes=1)


@register.filter
def active_since(moment: datetime) -> str:
    """ "Active just now", or "Active 5 minutes ago": when a session was last used."""
    if timezone.now() - moment < JUST_NOW:
        return gettext("Active just now")
    return gettext("Active %(time)s ago") % {"time": timesince(moment)}


@register.filter
def time_ago(moment: datetime) -> str:
    """ "just now", or "5 minutes ago": the admin's last activity column."""
    if timezone.now() - moment < JUST_NOW:
        return gettext("just now")
    return gettext("%(time)s ago") % {"time": timesince(moment)}


@register.filter
def short_datetime(moment: datetime) -> str:
    """A time in the current time zone and the short format of the current language
    ("12/07/2026 9:30 a.m."): the admin's columns of times, which must fit a row."""
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return formats.date_format(local, "SHORT_DATETIME_FORMAT")


@register.simple_tag
def site_root() -> str:
    """The site's root ("/", or the script prefix it is served under): where the pages'
    "Back to the site" link leads."""
    return get_script_prefix()
