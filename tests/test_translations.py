"""The translations that ship in django_secure_sessions/locale: the pages speak the project's
language (``LANGUAGE_CODE``, or the visitor's with ``LocaleMiddleware``), and every catalogue
is complete and compiled.

The catalogue checks run GNU gettext (``apt-get install gettext``), as ``makemessages`` does.
Without it they are skipped, and say why; ``REQUIRE_GETTEXT=1`` turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient
from django.utils.translation import to_locale
from pytest_django.fixtures import Settings as SettingsWrapper

import django_secure_sessions
from tests.browsing import CHROME_ON_WINDOWS, SAFARI_ON_IPHONE, Browser, Browsers, sign_in
from tests.marks import async_test
from tests.redis_server import required

PACKAGE = Path(django_secure_sessions.__file__).parent
LOCALE = PACKAGE / "locale"
LIST = "/account/sessions/"
REVOKE_OTHERS = "/account/sessions/revoke-others/"
REAUTH = "/account/sessions/reauth/"

# LANGUAGE_CODE -> what the "Your sessions" page says: its heading, the current session's
# mark, and the button that signs out the other sessions.
SESSIONS_PAGE = {
    "de": ("Ihre Sitzungen", "Dieses Gerät", "Auf allen anderen Geräten abmelden"),
    "fr": ("Vos sessions", "Cet appareil", "Déconnecter toutes les autres sessions"),
    "es": ("Sus sesiones", "Este dispositivo", "Cerrar la sesión en todos los demás dispositivos"),
    "pt-br": (
        "Suas sessões",
        "Este dispositivo",
        "Encerrar a sessão em todos os outros dispositivos",
    ),
    "ru": ("Ваши сеансы", "Это устройство", "Завершить все другие сеансы"),
    "zh-hans": ("您的会话", "当前设备", "在其他所有设备上退出登录"),
}
ENGLISH_SESSIONS_PAGE = ("Your sessions", "This device", "Sign out everywhere else")

# LANGUAGE_CODE -> what the re-authentication page says: its heading, the password's label,
# and the form's error for a wrong password.
REAUTH_PAGE = {
    "de": (
        "Passwort bestätigen",
        "Passwort",
        "Das Passwort ist nicht korrekt. Bitte versuchen Sie es erneut.",
    ),
    "fr": (
        "Confirmez votre mot de passe",
        "Mot de passe",
        "Ce mot de passe est incorrect. Veuillez réessayer.",
    ),
    "es": (
        "Confirme su contraseña",
        "Contraseña",
        "La contraseña no es correcta. Inténtelo de nuevo.",
    ),
    "pt-br": ("Confirme sua senha", "Senha", "Essa senha não está correta. Tente novamente."),
    "ru": ("Подтвердите пароль", "Пароль", "Неверный пароль. Попробуйте ещё раз."),
    "zh-hans": ("确认您的密码", "密码", "密码不正确，请重试。"),  # noqa: RUF001 - Chinese commas
}
ENGLISH_REAUTH_PAGE = (
    "Confirm your password",
    ">Password<",
    "That password is not correct. Please try again.",
)

LANGUAGES = sorted(SESSIONS_PAGE)
GETTEXT_TOOLS = ("xgettext", "msgmerge", "msgattrib", "msgfmt", "msgunfmt")


def test_the_tests_cover_every_shipped_language() -> None:
    shipped = sorted(path.name for path in LOCALE.iterdir() if path.is_dir())
    assert shipped == sorted(to_locale(language) for language in LANGUAGES)
    assert sorted(REAUTH_PAGE) == LANGUAGES


# -- the pages ---------------------------------------------------------------------------


def signed_in_twice(browsers: Browsers, user: User) -> Browser:
    """The browser of a user signed in on a phone too, so that the page lists another
    session to sign out."""
    laptop = browsers.open(CHROME_ON_WINDOWS, "198.51.100.7")
    sign_in(laptop, user)
    sign_in(browsers.open(SAFARI_ON_IPHONE, "203.0.113.9"), user)
    return laptop


@pytest.mark.django_db
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_sessions_page_speaks_the_projects_language(
    browsers: Browsers, user: User, settings: SettingsWrapper, language: str
) -> None:
    settings.LANGUAGE_CODE = language
    laptop = signed_in_twice(browsers, user)

    response = laptop.get(LIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<html lang="{language}">' in page
    heading, this_device, sign_out_the_others = SESSIONS_PAGE[language]
    assert f"<h1>{heading}</h1>" in page
    assert f"<title>{heading}</title>" in page
    assert page.count(this_device) == 1
    assert sign_out_the_others in page
    assert all(english not in page for english in ENGLISH_SESSIONS_PAGE)


@pytest.mark.django_db
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_reauth_page_and_its_form_speak_the_projects_language(
    browsers: Browsers, user: User, settings: SettingsWrapper, language: str
) -> None:
    settings.LANGUAGE_CODE = language
    laptop = browsers.open()
    sign_in(laptop, user)

    shown = laptop.get(REAUTH).content.decode()
    refused = laptop.post(REAUTH, {"password": "not the password"})

    heading, label, wrong_password = REAUTH_PAGE[language]
    assert f"<h1>{heading}</h1>" in shown
    assert f">{label}</label>" in shown
    assert refused.status_code == 200
    page = refused.content.decode()
    assert wrong_password in page
    assert all(english not in shown + page for english in ENGLISH_REAUTH_PAGE)


@pytest.fixture
def russian(settings: SettingsWrapper) -> None:
    settings.LANGUAGE_CODE = "ru"


@pytest.mark.django_db
@pytest.mark.usefixtures("russian")
@pytest.mark.parametrize(
    ("others", "asked", "done"),
    [
        (1, "1 другой сеанс будет завершён.", "1 другой сеанс завершён."),
        (2, "2 других сеанса будут завершены.", "2 других сеанса завершены."),
        (5, "5 других сеансов будут завершены.", "5 других сеансов завершены."),
    ],
)
def test_russian_counts_sessions_in_its_three_plural_forms(
    browsers: Browsers, user: User, others: int, asked: str, done: str
) -> None:
    laptop = browsers.open()
    sign_in(laptop, user)
    for _ in range(others):
        sign_in(browsers.open(SAFARI_ON_IPHONE, "203.0.113.9"), user)

    question = laptop.get(REVOKE_OTHERS).content.decode()
    answer = laptop.post(REVOKE_OTHERS, follow=True).content.decode()

    assert asked in question
    assert done in answer
    assert "Это устройство" in answer  # the laptop's own session goes on


@pytest.fixture
def locale_middleware(settings: SettingsWrapper) -> None:
    """LocaleMiddleware where Django's docs put it: after the sessions, before common."""
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
        "django.middleware.locale.LocaleMiddleware",
    )
    settings.MIDDLEWARE = middleware


@async_test
@pytest.mark.usefixtures("locale_middleware")
async def test_with_locale_middleware_each_visitor_gets_their_language(
    async_client: AsyncClient, user: User
) -> None:
    await async_client.aforce_login(user)

    french = (await async_client.get(LIST, headers={"Accept-Language": "fr"})).content.decode()
    russian = (await async_client.get(LIST, headers={"Accept-Language": "ru"})).content.decode()
    english = (await async_client.get(LIST)).content.decode()  # LANGUAGE_CODE: en-us

    assert '<html lang="fr">' in french
    assert "<h1>Vos sessions</h1>" in french
    assert "<h1>Ваши сеансы</h1>" in russian
    assert "<h1>Your sessions</h1>" in english


# -- the catalogues ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gettext() -> dict[str, str]:
    """Where each gettext tool is; skips (or fails, under REQUIRE_GETTEXT=1) without them."""
    found = {tool: shutil.which(tool) for tool in GETTEXT_TOOLS}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        problem = f"{', '.join(missing)} not found (apt-get install gettext)"
        if required("REQUIRE_GETTEXT"):
            pytest.fail(f"REQUIRE_GETTEXT=1 but the catalogues can't be checked: {problem}")
        pytest.skip(f"GETTEXT NOT AVAILABLE, CATALOGUE CHECK SKIPPED: {problem}")
    return {tool: path for tool, path in found.items() if path is not None}


def run(command: list[str], cwd: Path | None = None) -> str:
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(  # noqa: S603 - our own command line
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def remade(gettext: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The locale folder of a copy of the package, after ``makemessages`` (what ``make
    messages`` runs, but keeping strings gone from the code, as obsolete entries)."""
    copy = tmp_path_factory.mktemp("remade") / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    locales = [f"--locale={to_locale(language)}" for language in LANGUAGES]
    run([sys.executable, "-m", "django", "makemessages", *locales], cwd=copy)
    return copy / "locale"


def catalogue(locale: Path, language: str, suffix: str = "po") -> Path:
    return locale / to_locale(language) / "LC_MESSAGES" / f"django.{suffix}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_makemessages_finds_nothing_to_translate(
    gettext: dict[str, str], remade: Path, language: str
) -> None:
    po = str(catalogue(remade, language))

    untranslated = run([gettext["msgattrib"], "--untranslated", po])
    fuzzy = run([gettext["msgattrib"], "--only-fuzzy", po])
    obsolete = run([gettext["msgattrib"], "--only-obsolete", po])

    advice = "run `make messages`, translate, and run it again"
    assert untranslated == "", f"untranslated strings ({advice}):\n{untranslated}"
    assert fuzzy == "", f"fuzzy translations to check ({advice}):\n{fuzzy}"
    assert obsolete == "", f"strings no longer in the code (`make messages`):\n{obsolete}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_shipped_mo_is_the_compiled_po(
    gettext: dict[str, str], tmp_path: Path, language: str
) -> None:
    compiled = tmp_path / "django.mo"
    # --check: the placeholders of each translation are those of its original, as
    # compilemessages requires, and the header is complete.
    run([gettext["msgfmt"], "--check", "-o", str(compiled), str(catalogue(LOCALE, language))])

    # Compared as catalogues, not bytes: another version of msgfmt may lay them out apart.
    shipped = run([gettext["msgunfmt"], str(catalogue(LOCALE, language, "mo"))])
    assert shipped == run([gettext["msgunfmt"], str(compiled)]), "run `make messages`"
