# Creates a table and renames every source, then commits: the rollback must undo both.

from django.db import migrations, models


def rename_sources(apps, schema_editor):
    Source = apps.get_model("merger", "Source")
    for source in Source.objects.all():
        source.name = f"{source.name} (renamed by a migration)"
        source.save(update_fields=["name"])


class Migration(migrations.Migration):
    initial = True

    dependencies = [("merger", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Widget",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50)),
            ],
        ),
        migrations.RunPython(rename_sources, migrations.RunPython.noop),
    ]
