"""Full-text search on PostgreSQL moves to a narrow table, ``marketplace_datasetsearch``: one row
per *listed* dataset with only what a catalogue search reads (licence, price, created_at and the
weighted tsvector of title and description), half the width of a dataset row, so ranking every
match reads half the pages. It is list-partitioned by licence (one partition per licence, and a
default one for licences added later): a licence-filtered search reads only that licence's rows
and GIN index. Triggers on ``marketplace_dataset`` keep it in step whatever writes datasets (the
services, the admin, bulk inserts, ``QuerySet.update``, raw SQL); the generated ``search_vector``
column of 0002 and its index are dropped, so the vector is stored once. Not a Django model: only
``marketplace.selectors.catalog`` reads it. Other databases: nothing to do."""

import re

from django.db import migrations


def vector(row: str = "") -> str:
    """The same vector as 0002's generated column, so ranks are unchanged; ``row`` qualifies the
    columns (``NEW.``)."""
    return (
        f"setweight(to_tsvector('english'::regconfig, coalesce({row}title, '')), 'A') || "
        f"setweight(to_tsvector('english'::regconfig, coalesce({row}description, '')), 'B')"
    )


FORWARD = """
CREATE TABLE marketplace_datasetsearch (
    dataset_id bigint NOT NULL,
    licence varchar(20) NOT NULL,
    price numeric(18, 6) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    search_vector tsvector NOT NULL,
    PRIMARY KEY (dataset_id, licence)
) PARTITION BY LIST (licence);
{PARTITIONS}
CREATE TABLE marketplace_datasetsearch_other PARTITION OF marketplace_datasetsearch DEFAULT;

CREATE FUNCTION marketplace_datasetsearch_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM marketplace_datasetsearch WHERE dataset_id = OLD.id;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
    END IF;
    IF NEW.status = 'listed' THEN
        INSERT INTO marketplace_datasetsearch (dataset_id, licence, price, created_at, search_vector)
        VALUES (NEW.id, NEW.licence, NEW.price, NEW.created_at, {NEW_VECTOR});
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION marketplace_datasetsearch_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE marketplace_datasetsearch;
    RETURN NULL;
END
$$;

CREATE TRIGGER datasetsearch_insert AFTER INSERT ON marketplace_dataset
    FOR EACH ROW WHEN (NEW.status = 'listed') EXECUTE FUNCTION marketplace_datasetsearch_sync();
-- Only updates that change what the table holds (progress updates, schema edits etc. skip it).
CREATE TRIGGER datasetsearch_update AFTER UPDATE ON marketplace_dataset
    FOR EACH ROW WHEN (
        (OLD.status = 'listed' OR NEW.status = 'listed') AND (
            OLD.id IS DISTINCT FROM NEW.id OR OLD.status IS DISTINCT FROM NEW.status
            OR OLD.title IS DISTINCT FROM NEW.title OR OLD.description IS DISTINCT FROM NEW.description
            OR OLD.licence IS DISTINCT FROM NEW.licence OR OLD.price IS DISTINCT FROM NEW.price
            OR OLD.created_at IS DISTINCT FROM NEW.created_at
        )
    ) EXECUTE FUNCTION marketplace_datasetsearch_sync();
CREATE TRIGGER datasetsearch_delete AFTER DELETE ON marketplace_dataset
    FOR EACH ROW WHEN (OLD.status = 'listed') EXECUTE FUNCTION marketplace_datasetsearch_sync();
-- Django's flush (transactional tests) truncates model tables only.
CREATE TRIGGER datasetsearch_truncate AFTER TRUNCATE ON marketplace_dataset
    FOR EACH STATEMENT EXECUTE FUNCTION marketplace_datasetsearch_truncate();

INSERT INTO marketplace_datasetsearch (dataset_id, licence, price, created_at, search_vector)
    SELECT d.id, d.licence, d.price, d.created_at, {D_VECTOR}
    FROM marketplace_dataset d WHERE d.status = 'listed';
CREATE INDEX datasetsearch_vector_gin ON marketplace_datasetsearch USING gin (search_vector);
ANALYZE marketplace_datasetsearch;

DROP INDEX IF EXISTS dataset_search_vector_gin;
ALTER TABLE marketplace_dataset DROP COLUMN IF EXISTS search_vector;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS datasetsearch_insert ON marketplace_dataset;
DROP TRIGGER IF EXISTS datasetsearch_update ON marketplace_dataset;
DROP TRIGGER IF EXISTS datasetsearch_delete ON marketplace_dataset;
DROP TRIGGER IF EXISTS datasetsearch_truncate ON marketplace_dataset;
DROP FUNCTION IF EXISTS marketplace_datasetsearch_sync();
DROP FUNCTION IF EXISTS marketplace_datasetsearch_truncate();
DROP TABLE IF EXISTS marketplace_datasetsearch;

ALTER TABLE marketplace_dataset ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({VECTOR}) STORED;
CREATE INDEX dataset_search_vector_gin ON marketplace_dataset USING gin (search_vector);
"""
# The licences of marketplace.models.Licence when this was written.
LICENCES = ("CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC0-1.0", "ODbL-1.0", "proprietary")
PARTITIONS = "\n".join(
    f"CREATE TABLE marketplace_datasetsearch_{re.sub('[^a-z0-9]+', '_', licence.lower())}"
    f" PARTITION OF marketplace_datasetsearch FOR VALUES IN ('{licence}');"
    for licence in LICENCES
)
FORWARD = FORWARD.replace("{PARTITIONS}", PARTITIONS)
FORWARD = FORWARD.replace("{NEW_VECTOR}", vector("NEW.")).replace("{D_VECTOR}", vector("d."))
BACKWARD = BACKWARD.replace("{VECTOR}", vector())


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0003_catalogue_indexes")]
    operations = [migrations.RunPython(forward, backward)]
