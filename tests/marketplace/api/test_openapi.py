import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

REQUIRED_PATHS = [
    "/api/v1/auth/token/",
    "/api/v1/datasets/",
    "/api/v1/datasets/{dataset_id}/",
    "/api/v1/datasets/{dataset_id}/schema/",
    "/api/v1/datasets/{dataset_id}/mock/",
    "/api/v1/datasets/{dataset_id}/submit/",
    "/api/v1/datasets/{dataset_id}/approve/",
    "/api/v1/datasets/{dataset_id}/reject/",
    "/api/v1/datasets/{dataset_id}/delist/",
    "/api/v1/datasets/{dataset_id}/reports/",
    "/api/v1/moderation/queue/",
    "/api/v1/moderation/log/",
]


def test_schema_is_valid_openapi_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out), "--validate", "--fail-on-warn")
    assert out.read_text().startswith("openapi: 3")


def test_schema_endpoint_lists_every_operation(api):
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    missing = [p for p in REQUIRED_PATHS if p not in paths]
    assert not missing
    assert "multipart/form-data" in paths["/api/v1/datasets/"]["post"]["requestBody"]["content"]


def test_swagger_ui_is_served_without_any_cdn(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(not s.startswith(("http://", "https://", "//")) for s in sources), sources
    assert "swagger-ui" in html
