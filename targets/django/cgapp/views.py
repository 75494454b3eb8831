"""The endpoints the login flow drives: registration, login, an authenticated read, logout.

CSRF is enforced as in a real app: the client fetches a token first and sends it with every POST.
Login rotates the token, so login and register return the current one.
"""
import json

from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

_MISSING = object()


def form_data(request):
    """Fields of a form-encoded or JSON body."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST


@require_GET
def health(request):
    # Touches neither the cache nor the session: "the app is up", nothing more.
    return HttpResponse("ok")


@require_GET
@ensure_csrf_cookie
def csrf(request):
    return JsonResponse({"csrftoken": get_token(request)})


@require_POST
def register(request):
    data = form_data(request)
    username = data.get("username", "")
    password = data.get("password", "")
    if not username or not password:
        return JsonResponse({"error": "username and password are required"}, status=400)
    if User.objects.filter(username=username).exists():
        return JsonResponse({"error": "username taken"}, status=409)
    User.objects.create_user(username=username, password=password)
    return JsonResponse({"username": username, "csrftoken": get_token(request)}, status=201)


@require_POST
def login_view(request):
    data = form_data(request)
    user = authenticate(request, username=data.get("username", ""), password=data.get("password", ""))
    if user is None:
        return JsonResponse({"error": "invalid credentials"}, status=401)
    login(request, user)
    return JsonResponse({"username": user.username, "csrftoken": get_token(request)})


@require_GET
def me(request):
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False}, status=401)
    # A per-user cache read, as real apps do: this is the first call to CACHES["default"].
    profile = cache.get_or_set(
        f"profile:{request.user.pk}",
        lambda: {"username": request.user.username, "joined": request.user.date_joined.isoformat()},
        300,
    )
    return JsonResponse({"authenticated": True, "username": request.user.username, "profile": profile})


@require_POST
def logout_view(request):
    logout(request)
    return JsonResponse({"ok": True, "csrftoken": get_token(request)})


@csrf_exempt  # written by the harness, not by a browser: no session, nothing to forge
@require_http_methods(["GET", "POST"])
def cache_item(request, key):
    """A value in CACHES["default"], for checking one stack's cache entries through another.

    POST stores the JSON body as the Python value it decodes to (int, str, dict, list: what the
    cache backend's serializer and compressor then encode); GET reads it back through this app's
    backend. A value the backend cannot decode raises here, answered 500 and logged.
    """
    if request.method == "POST":
        cache.set(key, json.loads(request.body), 3600)
        return JsonResponse({"ok": True})
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        return JsonResponse({"found": False}, status=404)
    return JsonResponse({"found": True, "value": value})
