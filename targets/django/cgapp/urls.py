from django.urls import path

from . import views

urlpatterns = [
    path("health/", views.health),
    path("csrf/", views.csrf),
    path("register/", views.register),
    path("login/", views.login_view),
    path("me/", views.me),
    path("logout/", views.logout_view),
    path("cache/<str:key>/", views.cache_item),
]
