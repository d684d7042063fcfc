"""The example project as an ASGI application, for uvicorn or daphne (docs/howto/asgi.rst).

From example_project/::

    python -m uvicorn demo.asgi:application --host 127.0.0.1 --port 8000
    python -m daphne -b 127.0.0.1 -p 8000 demo.asgi:application
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

application = get_asgi_application()
if settings.DEBUG:
    # Demo only: the static files, as runserver serves them. A real deployment serves them
    # from a web server, a CDN or WhiteNoise.
    application = ASGIStaticFilesHandler(application)
