"""PostgreSQL: a catalogue generation number that changes, in the same transaction, with every
write that can change what the public catalogue lists: a listed dataset inserted, updated or
deleted (or a dataset becoming or ceasing to be listed), its tags, tag names, owners' usernames,
and truncation. ``marketplace.api.catalogue_cache`` keys catalogue pages on it, so a page served
from memory is never older than the committed catalogue.

The number is drawn from a sequence, which never hands out a value twice (not even after a
rollback), and stored in a one-row table that readers see through MVCC: a reader sees a new value
only once its writer committed, and a value it sees is never reused for other data. Not a Django
model, so test flushes leave the row alone. Other databases: nothing to do (no page cache)."""

from django.db import migrations

FORWARD = """
CREATE SEQUENCE marketplace_catalogue_generation_seq;
CREATE TABLE marketplace_cataloguegeneration (id smallint PRIMARY KEY, value bigint NOT NULL);
INSERT INTO marketplace_cataloguegeneration (id, value) VALUES (1, nextval('marketplace_catalogue_generation_seq'));

CREATE FUNCTION marketplace_catalogue_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE marketplace_cataloguegeneration SET value = nextval('marketplace_catalogue_generation_seq') WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER catalogue_bump_dataset_insert AFTER INSERT ON marketplace_dataset
    FOR EACH ROW WHEN (NEW.status = 'listed') EXECUTE FUNCTION marketplace_catalogue_bump();
CREATE TRIGGER catalogue_bump_dataset_update AFTER UPDATE ON marketplace_dataset
    FOR EACH ROW WHEN (OLD.status = 'listed' OR NEW.status = 'listed') EXECUTE FUNCTION marketplace_catalogue_bump();
CREATE TRIGGER catalogue_bump_dataset_delete AFTER DELETE ON marketplace_dataset
    FOR EACH ROW WHEN (OLD.status = 'listed') EXECUTE FUNCTION marketplace_catalogue_bump();
CREATE TRIGGER catalogue_bump_dataset_truncate AFTER TRUNCATE ON marketplace_dataset
    FOR EACH STATEMENT EXECUTE FUNCTION marketplace_catalogue_bump();
CREATE FUNCTION marketplace_catalogue_bump_tags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only a listed dataset's tags are in the catalogue (drafts are tagged all the time).
    IF EXISTS (
        SELECT 1 FROM marketplace_dataset
        WHERE status = 'listed' AND id IN (NEW.dataset_id, OLD.dataset_id)
    ) THEN
        UPDATE marketplace_cataloguegeneration SET value = nextval('marketplace_catalogue_generation_seq') WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER catalogue_bump_dataset_tags AFTER INSERT OR UPDATE OR DELETE ON marketplace_dataset_tags
    FOR EACH ROW EXECUTE FUNCTION marketplace_catalogue_bump_tags();
CREATE TRIGGER catalogue_bump_dataset_tags_truncate AFTER TRUNCATE ON marketplace_dataset_tags
    FOR EACH STATEMENT EXECUTE FUNCTION marketplace_catalogue_bump();
CREATE TRIGGER catalogue_bump_tag AFTER UPDATE OR DELETE OR TRUNCATE ON marketplace_tag
    FOR EACH STATEMENT EXECUTE FUNCTION marketplace_catalogue_bump();
CREATE TRIGGER catalogue_bump_username AFTER UPDATE OF username ON marketplace_user
    FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username) EXECUTE FUNCTION marketplace_catalogue_bump();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS catalogue_bump_dataset_insert ON marketplace_dataset;
DROP TRIGGER IF EXISTS catalogue_bump_dataset_update ON marketplace_dataset;
DROP TRIGGER IF EXISTS catalogue_bump_dataset_delete ON marketplace_dataset;
DROP TRIGGER IF EXISTS catalogue_bump_dataset_truncate ON marketplace_dataset;
DROP TRIGGER IF EXISTS catalogue_bump_dataset_tags ON marketplace_dataset_tags;
DROP TRIGGER IF EXISTS catalogue_bump_dataset_tags_truncate ON marketplace_dataset_tags;
DROP FUNCTION IF EXISTS marketplace_catalogue_bump_tags();
DROP TRIGGER IF EXISTS catalogue_bump_tag ON marketplace_tag;
DROP TRIGGER IF EXISTS catalogue_bump_username ON marketplace_user;
DROP FUNCTION IF EXISTS marketplace_catalogue_bump();
DROP TABLE IF EXISTS marketplace_cataloguegeneration;
DROP SEQUENCE IF EXISTS marketplace_catalogue_generation_seq;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0005_notification")]
    operations = [migrations.RunPython(forward, backward)]
