import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache

from tests.factories import BusinessUnitFactory, MembershipFactory, UserFactory


@pytest.fixture
def bu(db):
    return BusinessUnitFactory(name="Acme")


@pytest.fixture
def other_bu(db):
    return BusinessUnitFactory(name="Globex")


@pytest.fixture
def staff_member(bu):
    """A staff user with every model permission, member of ``bu`` only."""
    user = UserFactory(username="operator")
    user.user_permissions.set(Permission.objects.all())
    MembershipFactory(user=user, business_unit=bu)
    return user


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (the dashboards keep their figures a few seconds,
    and SQLite may give the next test's objects the same ids)."""
    cache.clear()
    yield
    cache.clear()
