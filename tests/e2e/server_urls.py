"""The example project's URLs, plus the test server's clock (tests/e2e/clock.py)."""

from django.urls import include, path

from tests.e2e import clock

urlpatterns = [
    path("__e2e__/clock/", clock.advance_clock),
    path("", include("demo.urls")),
]
