"""Settings of the cachegate reference app.

Everything a cell varies (CACHES, SESSION_ENGINE, SESSION_CACHE_ALIAS, PASSWORD_HASHERS, ...) arrives
as JSON in CACHEGATE_SETTINGS, written exactly as a user writes it in settings.py, and is applied
last, so the app runs with precisely the configuration under test.
"""
import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("CACHEGATE_SECRET_KEY", "cachegate-reference-app-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "cgapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "cgapp.urls"
WSGI_APPLICATION = "cgapp.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CACHEGATE_DB", str(BASE_DIR / "db.sqlite3")),
        # Several gunicorn workers share one SQLite file: wait for locks instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# File-backed sessions (SESSION_ENGINE "...backends.file") live beside the database, in the app's
# private folder, never in the system's temp folder (Django's default).
SESSION_FILE_PATH = os.path.join(os.path.dirname(DATABASES["default"]["NAME"]), "sessions")
os.makedirs(SESSION_FILE_PATH, exist_ok=True)
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}

# The cell's settings, applied last.
globals().update(json.loads(os.environ.get("CACHEGATE_SETTINGS", "{}")))
