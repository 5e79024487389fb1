"""Existing datasets get what uploads now create: a fresh commitment salt and holdout key (256
bits each, from the OS, sealed under the platform key), the commitment "0x" + SHA-256(salt ||
file), computed by decrypting the stored file (slow for large files: it reads each once), the
public size bucket, and a total delta cap of at least the per-job delta.

``public_row_count`` stays empty: only the owner may declare it (jobs wait until they do). A file
that cannot be read (missing, or sealed under another key) leaves its commitment empty and is
named on stdout; such a dataset cannot be published or run until it is re-uploaded."""

from django.db import migrations

DELTA_TOTAL_DEFAULT = 1e-4


def backfill(apps, schema_editor):
    from common.crypto import DecryptionError
    from marketplace.services import storage
    from marketplace.services.datasets import (
        HOLDOUT_PURPOSE,
        SALT_PURPOSE,
        commitment_compute,
        secret_new,
        size_bucket_of,
    )

    Dataset = apps.get_model("marketplace", "Dataset")
    for dataset in Dataset.objects.using(schema_editor.connection.alias).order_by("pk").iterator(chunk_size=100):
        salt, dataset.commitment_salt_sealed = secret_new(purpose=SALT_PURPOSE)
        _key, dataset.holdout_key_sealed = secret_new(purpose=HOLDOUT_PURPOSE)
        try:
            dataset.commitment = commitment_compute(
                salt=salt, chunks=storage.encrypted_file_chunks(dataset.storage_name)
            )
        except (DecryptionError, OSError) as exc:
            dataset.commitment = ""
            print(f"\n  dataset {dataset.pk}: no commitment, its file cannot be read ({exc.__class__.__name__})")
        dataset.size_bucket = size_bucket_of(dataset.file_size)
        dataset.delta_total = max(DELTA_TOTAL_DEFAULT, dataset.delta)
        dataset.save(
            update_fields=[
                "commitment_salt_sealed",
                "holdout_key_sealed",
                "commitment",
                "size_bucket",
                "delta_total",
            ]
        )


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0007_dataset_commitment_public_fields")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
