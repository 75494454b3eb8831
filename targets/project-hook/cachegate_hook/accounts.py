"""Creates the accounts a form login signs in with, through the project's own user model.

`python -m cachegate_hook.accounts TAG COUNT`, with the password in CACHEGATE_ACCOUNT_PASSWORD.
The login is the model's USERNAME_FIELD: an address (TAG + N @cachegate.example) when that field is
an EmailField, else TAG + N; REQUIRED_FIELDS are filled the same way. Prints one JSON object: the
model, its USERNAME_FIELD and the logins.
"""
import json
import os
import sys

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import models  # noqa: E402


def value_for(field, tag, n):
    return f"{tag}{n}@cachegate.example" if isinstance(field, models.EmailField) else f"{tag}{n}"


def main():
    tag, count = sys.argv[1], int(sys.argv[2])
    password = os.environ["CACHEGATE_ACCOUNT_PASSWORD"]
    user_model = get_user_model()
    meta = user_model._meta
    logins = []
    for n in range(count):
        login = value_for(meta.get_field(user_model.USERNAME_FIELD), tag, n)
        extra = {name: value_for(meta.get_field(name), tag, n) for name in user_model.REQUIRED_FIELDS}
        user_model.objects.create_user(**{user_model.USERNAME_FIELD: login}, password=password, **extra)
        logins.append(login)
    print(
        json.dumps(
            {
                "model": f"{meta.app_label}.{user_model.__name__}",
                "username_field": user_model.USERNAME_FIELD,
                "logins": logins,
            }
        )
    )


if __name__ == "__main__":
    main()
