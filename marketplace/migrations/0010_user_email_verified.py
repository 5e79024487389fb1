"""Sign-up confirms the e-mail address by a link. Accounts that existed before are not marked
confirmed: their owners confirm from the profile page (one click sends the link)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0009_dataset_description_html"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
