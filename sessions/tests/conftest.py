"""Shared fixtures: named users for each role, and what the real-services policy needs."""

from __future__ import annotations

import pytest

from sessions import roles


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, role: str | None = None, *, superuser: bool = False):
        from django.contrib.auth.models import Group

        user = django_user_model.objects.create_user(username=username, password="pw-" + username)
        if superuser:
            user.is_superuser = True
            user.is_staff = True
            user.save()
        if role:
            roles.ensure_groups()
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def viewer(make_user):
    return make_user("vera", roles.VIEWER)


@pytest.fixture
def engineer(make_user):
    return make_user("erin", roles.ENGINEER)


@pytest.fixture
def operator(make_user):
    return make_user("otto", roles.OPERATOR)


@pytest.fixture
def admin_user(make_user):
    return make_user("ada", superuser=True)
