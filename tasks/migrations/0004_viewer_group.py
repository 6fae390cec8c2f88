# The read-only "viewer" group: its members see every page and change nothing (they
# lack tasks.change_task, which the "refresh from proxy" button asks for).

from django.db import migrations

GROUP = "viewer"
MODELS = {
    "source": "Source",
    "task": "Midjourney task",
    "taskevent": "task event",
    "syncrun": "sync run",
    "invalidrecord": "invalid record",
}


def create_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    group, _ = Group.objects.get_or_create(name=GROUP)
    # Permissions are normally made after migrate; make the view ones now, as
    # create_permissions would, so the group has them on a fresh database too.
    for model, verbose in MODELS.items():
        ct, _ = ContentType.objects.get_or_create(app_label="tasks", model=model)
        perm, _ = Permission.objects.get_or_create(
            content_type=ct, codename=f"view_{model}", defaults={"name": f"Can view {verbose}"}
        )
        group.permissions.add(perm)


def drop_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0003_search"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_group, drop_group),
    ]
