"""The demo's one model: the devices each user has signed in from (see signins.py)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

# Longer families (a device model read from a hostile header) are cut to this length.
FAMILY_MAX_LENGTH = 100


class KnownDevice(models.Model):
    """A browser, OS and device family a user has signed in from.

    Families, not the user-agent string: a browser updates itself every few weeks, and a
    new version is no new device. Families are what the session records too (``browser``,
    ``os``, ``device`` of ``SessionInfo``) and what "Your sessions" shows.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    browser = models.CharField(max_length=FAMILY_MAX_LENGTH)
    os = models.CharField(max_length=FAMILY_MAX_LENGTH)
    device = models.CharField(max_length=FAMILY_MAX_LENGTH)
    first_seen = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager["KnownDevice"]] = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "browser", "os", "device"], name="demo_knowndevice_unique"
            )
        ]

    def __str__(self) -> str:
        return describe_device(self.browser, self.os, self.device)


def describe_device(browser: str, os: str, device: str) -> str:
    """ "Firefox on Windows", "Mobile Safari on iOS, iPhone": as the demo's pages say it."""
    model = "" if device in {"", "Other"} else f", {device}"
    return f"{browser} on {os}{model}"
