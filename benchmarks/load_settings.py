"""Settings of a process that serves the load benchmark's project (benchmarks/load.py
starts it with the environment of ``load_project.served_environment()``)."""

import os

from benchmarks.load_project import (
    ENV_ASYNC_VIEWS,
    ENV_CONFIGURATION,
    ENV_DATABASE_URL,
    ENV_REDIS_URL,
    ENV_SECRET_KEY,
    configuration_named,
    project_settings,
)

globals().update(
    project_settings(
        configuration_named(os.environ[ENV_CONFIGURATION]),
        database_url=os.environ[ENV_DATABASE_URL],
        redis_url=os.environ[ENV_REDIS_URL],
        secret_key=os.environ[ENV_SECRET_KEY],
        async_views=os.environ[ENV_ASYNC_VIEWS] == "1",
    )
)
