"""Full-text search on PostgreSQL: a generated, stored tsvector of title (weight A) and
description (weight B), with a GIN index. Other databases use the selector's fallback."""

from django.db import migrations

FORWARD = """
ALTER TABLE marketplace_dataset ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') ||
    setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
) STORED;
CREATE INDEX dataset_search_vector_gin ON marketplace_dataset USING gin (search_vector);
"""
BACKWARD = """
DROP INDEX IF EXISTS dataset_search_vector_gin;
ALTER TABLE marketplace_dataset DROP COLUMN IF EXISTS search_vector;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
