# Curation (tasks/curation/): favourites, team tags, collections, share links; and what
# the viewer group may do with them (tasks/curation/rights.py): see them, favourite
# (everyone keeps their own stars, no permission asked), never tag, edit or share.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

VIEWER = "viewer"
# Given to the viewer group: the admin's view-only pages of these tables.
VIEWER_PERMISSIONS = {"collection": "collection", "tag": "tag"}


def viewers_see_collections(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    group = Group.objects.filter(name=VIEWER).first()
    if group is None:
        return
    # Made now, as create_permissions would after migrate (see 0004_viewer_group).
    for model, verbose in VIEWER_PERMISSIONS.items():
        ct, _ = ContentType.objects.get_or_create(app_label="tasks", model=model)
        perm, _ = Permission.objects.get_or_create(
            content_type=ct, codename=f"view_{model}", defaults={"name": f"Can view {verbose}"}
        )
        group.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0014_accounts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50, unique=True)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name="Collection",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated", models.DateTimeField(default=django.utils.timezone.now)),
                ("cover", models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="tasks.task")),
                ("owner", models.ForeignKey(blank=True, help_text="Empty: a team collection everyone sees.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="collections", to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.CreateModel(
            name="CollectionItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveIntegerField()),
                ("added", models.DateTimeField(default=django.utils.timezone.now)),
                ("collection", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="items", to="tasks.collection")),
                ("task", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="collection_items", to="tasks.task")),
            ],
            options={
                "indexes": [models.Index(fields=["collection", "position"], name="collectionitem_order_idx"), models.Index(fields=["task"], name="collectionitem_task_idx")],
                "constraints": [models.UniqueConstraint(fields=("collection", "task"), name="collectionitem_collection_task_uniq")],
            },
        ),
        migrations.CreateModel(
            name="Favourite",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("task", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="favourites", to="tasks.task")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="favourites", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("user", "task"), name="favourite_user_task_uniq")],
            },
        ),
        migrations.CreateModel(
            name="ShareLink",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=32, unique=True)),
                ("fields", models.JSONField(blank=True, default=list)),
                ("expires", models.DateTimeField()),
                ("revoked", models.DateTimeField(blank=True, null=True)),
                ("views", models.PositiveIntegerField(default=0)),
                ("last_viewed", models.DateTimeField(blank=True, null=True)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("collection", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="share_links", to="tasks.collection")),
                ("created_by", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="share_links", to=settings.AUTH_USER_MODEL)),
                ("task", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tasks.task")),
            ],
            options={
                "indexes": [models.Index(fields=["created_by", "-created"], name="sharelink_creator_idx"), models.Index(fields=["task"], name="sharelink_task_idx")],
                "constraints": [models.CheckConstraint(condition=models.Q(models.Q(("collection__isnull", True), ("task__isnull", False)), models.Q(("collection__isnull", False), ("task__isnull", True)), _connector="OR"), name="sharelink_one_target")],
            },
        ),
        migrations.CreateModel(
            name="TaskTag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("added", models.DateTimeField(default=django.utils.timezone.now)),
                ("added_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("tag", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="task_tags", to="tasks.tag")),
                ("task", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="task_tags", to="tasks.task")),
            ],
            options={
                "verbose_name": "task tag",
                "indexes": [models.Index(fields=["tag", "task"], name="tasktag_tag_task_idx")],
                "constraints": [models.UniqueConstraint(fields=("task", "tag"), name="tasktag_task_tag_uniq")],
            },
        ),
        migrations.RunPython(viewers_see_collections, migrations.RunPython.noop),
    ]
