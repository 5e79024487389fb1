import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client

from marketplace.models import Dataset, ModerationLogEntry
from tests.factories import UserFactory, make_dataset

pytestmark = pytest.mark.django_db


def test_every_model_has_a_working_admin(provider, staff):
    make_dataset(owner=provider, status="listed", moderator=staff)
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    models = [*apps.get_app_config("marketplace").get_models(), *apps.get_app_config("chain").get_models()]
    for model in models:
        assert admin.site.is_registered(model), model
        meta = model._meta
        changelist = client.get(f"/admin/{meta.app_label}/{meta.model_name}/")
        assert changelist.status_code == 200, meta.model_name
        obj = model.objects.first()
        if obj is not None:
            assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/{obj.pk}/change/").status_code == 200


def test_admin_actions_go_through_the_moderation_service(provider, staff):
    dataset = make_dataset(owner=provider, status="pending_review")
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    response = client.post(
        "/admin/marketplace/dataset/", {"action": "action_approve", "_selected_action": [dataset.pk]}
    )
    assert response.status_code == 302
    assert Dataset.objects.get(pk=dataset.pk).status == "listed"
    assert ModerationLogEntry.objects.filter(dataset=dataset, action="approve", actor=superuser).exists()
