"""The settings a team's own Django project runs with under cachegate.

First the project's own settings module (named in CACHEGATE_PROJECT_SETTINGS), unchanged; then what
the harness owns: a scratch SQLite database (CACHEGATE_DB), 127.0.0.1 among the allowed hosts, the
`cachegate_hook` app that reports unhandled exceptions, and, for `django-tests`, the runner that
reports each test; last the cell's settings (CACHEGATE_SETTINGS, JSON written as in settings.py),
so the project runs with exactly the configuration under test. Nothing in the project is changed:
this module lives in cachegate's cache and is found through PYTHONPATH.
"""
import importlib
import json
import os

_project = importlib.import_module(os.environ["CACHEGATE_PROJECT_SETTINGS"])
globals().update({name: value for name, value in vars(_project).items() if name.isupper()})

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["CACHEGATE_DB"],
        # Several gunicorn workers share one SQLite file: wait for locks instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
ALLOWED_HOSTS = [*globals().get("ALLOWED_HOSTS", []), "127.0.0.1", "localhost"]
INSTALLED_APPS = [*globals().get("INSTALLED_APPS", []), "cachegate_hook"]
# File-backed sessions live beside the scratch database, never in the project or /tmp.
SESSION_FILE_PATH = os.path.join(os.path.dirname(os.environ["CACHEGATE_DB"]), "sessions")
os.makedirs(SESSION_FILE_PATH, exist_ok=True)
if os.environ.get("CACHEGATE_TEST_REPORT"):
    TEST_RUNNER = "cachegate_hook.runner.ReportingRunner"

# The cell's settings, applied last.
globals().update(json.loads(os.environ.get("CACHEGATE_SETTINGS", "{}")))
