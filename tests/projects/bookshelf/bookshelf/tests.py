from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import TestCase


class ShelfTests(TestCase):
    def setUp(self):
        self.user = get_user_model().objects.create_user("reader@bookshelf.example", "a-long-passphrase")

    def test_login_form_redirects_to_the_shelf(self):
        r = self.client.post("/accounts/login/", {"username": "reader@bookshelf.example", "password": "a-long-passphrase"})
        self.assertRedirects(r, "/shelf/", fetch_redirect_response=False)
        self.assertContains(self.client.get("/shelf/"), "Signed in as reader@bookshelf.example")

    def test_anonymous_readers_are_sent_to_sign_in(self):
        self.assertRedirects(self.client.get("/shelf/"), "/accounts/login/?next=/shelf/")

    def test_the_shelf_is_kept_in_the_cache(self):
        self.client.force_login(self.user)
        cache.delete(f"shelf:{self.user.pk}")
        self.client.get("/shelf/")
        self.assertEqual(cache.get(f"shelf:{self.user.pk}")["owner"], "reader@bookshelf.example")

    def test_the_sign_out_link_signs_out(self):
        # The old templates link to /accounts/logout/ with a plain GET: Django 4.2 signs out (with a
        # deprecation warning); Django 5.0 removed GET from LogoutView, which answers 405.
        self.client.force_login(self.user)
        r = self.client.get("/accounts/logout/")
        self.assertRedirects(r, "/accounts/login/", fetch_redirect_response=False)
