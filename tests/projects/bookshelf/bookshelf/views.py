from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.shortcuts import render


class ShelfUnavailable(Exception):
    """The reader's shelf could not be loaded (the cache failed under it)."""


def load_shelf(user):
    return {"owner": user.email, "books": ["Dune", "Middlemarch", "The Dispossessed"]}


@login_required
def shelf(request):
    try:
        books = cache.get_or_set(f"shelf:{request.user.pk}", lambda: load_shelf(request.user), 300)
    except Exception as e:
        raise ShelfUnavailable(f"shelf of user {request.user.pk}") from e
    return render(request, "shelf.html", {"shelf": books})
