"""The "new sign-in" e-mail: tell users when their account signs in on a device it has not
been used on before (docs/howto/new-signin-email.rst).

Connected to Django's ``user_logged_in`` in ``DemoConfig.ready()``. Every login goes
through it, whatever signs the user in (the login form, a social login, an SSO backend),
since they all call ``django.contrib.auth.login()``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from user_agents import parse as parse_user_agent

from demo.models import FAMILY_MAX_LENGTH, KnownDevice, describe_device

logger = logging.getLogger(__name__)

# As much of the User-Agent header as django-secure-sessions keeps: a hostile 8 KB header
# costs the parser no more than a real one.
USER_AGENT_MAX_LENGTH = 512

SUBJECT = "New sign-in to your account"
BODY = """Hello {username},

Your account was just signed in to on a device it had not been used on before:

    {device}
    {when}

If this was you, there is nothing to do.

If it wasn't, someone else knows your password. Sign that session out on your
sessions page, then change your password:

    {sessions_url}
"""


def device_families(request: HttpRequest) -> tuple[str, str, str]:
    """The browser, OS and device families of the request's client.

    Parsed by the library django-secure-sessions records them with (``user-agents``), so
    they are the ones "Your sessions" shows for this session.
    """
    parsed = parse_user_agent(request.headers.get("User-Agent", "")[:USER_AGENT_MAX_LENGTH])
    browser, os, device = parsed.browser.family, parsed.os.family, parsed.device.family
    return browser[:FAMILY_MAX_LENGTH], os[:FAMILY_MAX_LENGTH], device[:FAMILY_MAX_LENGTH]


def email_on_new_device(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any
) -> None:
    """Record the device of this login; e-mail the user if it is new to their account.

    The e-mail says which kind of device and when, and links to the sessions page. It
    never holds the session key nor anything that works as a login link: a message that
    anyone can forward or read over a shoulder must not open the account.
    """
    email = getattr(user, "email", "")
    if request is None or not email:  # a login outside a request, or nowhere to write
        return
    browser, os, device = device_families(request)
    # The first device an account ever signs in from is nothing to warn about (the user
    # has just signed up, or this feature has just been turned on).
    first_ever = not KnownDevice.objects.filter(user=user).exists()
    try:
        with transaction.atomic():
            KnownDevice.objects.create(user=user, browser=browser, os=os, device=device)
    except IntegrityError:  # known already, maybe recorded by a login in parallel
        return
    if first_ever:
        return
    message = BODY.format(
        username=user.get_username(),
        device=describe_device(browser, os, device),
        when=timezone.now().strftime("%d %B %Y, %H:%M UTC"),
        sessions_url=request.build_absolute_uri(reverse("secure_sessions:list")),
    )
    try:
        send_mail(SUBJECT, message, None, [email])
    except OSError:
        # The mail server is down: the login must not fail for it (it went through
        # already); the log says whom the warning did not reach.
        logger.exception("Could not send the new sign-in e-mail to user %s", user.pk)
