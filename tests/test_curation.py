"""Curation: favourites, tags, collections, share links, selections and ZIPs (tasks/curation/)."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tasks.api.tokens import create_token
from tasks.curation import sharing
from tasks.ingest.sync import ingest, sync_source
from tasks.models import (
    Collection,
    CollectionItem,
    Favourite,
    ImageState,
    ShareLink,
    Source,
    Tag,
    Task,
    TaskTag,
)
from tests.conftest import make_task
from tests.test_pages import record

pytestmark = pytest.mark.django_db

SECRET = "sk-curation-secret-51ab"
CALLER = "caller-4242-uid"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def source():
    return Source.objects.create(
        name="main", base_url="http://proxy.internal.example:8080", secret=SECRET
    )


def login(username, *, viewer=False, staff=False):
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    if viewer:
        user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def alice():
    return login("alice")


@pytest.fixture
def viewer():
    return login("victor", viewer=True)


def archived(task, name, data=b"\x89PNG fake original bytes"):
    """Give the task an archived original in storage."""
    stored = default_storage.save(f"images/{name}.png", ContentFile(data))
    task.image_file = stored
    task.thumb_file = stored
    task.image_state = ImageState.ARCHIVED
    task.image_bytes = len(data)
    task.save()
    return task


def select(client, action, pks, **extra):
    return client.post(reverse("curation:selection"), {"action": action, "pk": pks, **extra})


def listed_ids(client, url):
    return [t.task_id for t in client.get(url).context["tasks"]]


# Favourites and tags


def test_each_user_filters_the_list_gallery_export_and_api_by_their_own_stars(
    source, alice, viewer
):
    a, b, c = (make_task(source, task_id=f"170000000000000{n}") for n in (1, 2, 3))
    user, client = alice
    _, viewer_client = viewer
    url = reverse("curation:favourite", args=[a.task_id])
    assert client.post(url, HTTP_ACCEPT="application/json").json() == {"favourite": True}
    assert viewer_client.post(
        reverse("curation:favourite", args=[b.task_id]), HTTP_ACCEPT="application/json"
    ).json() == {"favourite": True}

    assert listed_ids(client, "/tasks/?favourite=1") == [a.task_id]
    assert listed_ids(viewer_client, "/tasks/?favourite=1") == [b.task_id]
    assert listed_ids(client, "/tasks/") == [c.task_id, b.task_id, a.task_id]
    export = b"".join(client.get("/tasks/export.csv?favourite=1").streaming_content).decode()
    assert a.task_id in export and b.task_id not in export
    _row, token = create_token(user)
    api = Client().get("/mj/task/list?favourite=1", HTTP_MJ_API_SECRET=token)
    assert [t["id"] for t in api.json()] == [a.task_id]

    # The same POST again takes the star off.
    assert client.post(url, HTTP_ACCEPT="application/json").json() == {"favourite": False}
    assert listed_ids(client, "/tasks/?favourite=1") == []


def test_tags_filter_with_or_within_and_and_across_parameters(source, alice):
    a = make_task(source, task_id="1700000000000001")
    b = make_task(source, task_id="1700000000000002", status="FAILURE")
    c = make_task(source, task_id="1700000000000003")
    user, client = alice
    assert select(client, "tag", [a.pk, b.pk], tags="sunset, 海报").status_code == 200
    assert select(client, "tag", [c.pk], tags="portrait").status_code == 200

    assert listed_ids(client, "/tasks/?tag=sunset") == [b.task_id, a.task_id]
    assert listed_ids(client, "/tasks/?tag=海报&tag=portrait") == [c.task_id, b.task_id, a.task_id]
    assert listed_ids(client, "/tasks/?tag=sunset&status=SUCCESS") == [a.task_id]
    assert listed_ids(client, "/gallery/?tag=nothing") == []
    _row, token = create_token(user)
    api = Client().get("/mj/task/list?tag=portrait,sunset&status=FAILURE", HTTP_MJ_API_SECRET=token)
    assert [t["id"] for t in api.json()] == [b.task_id]

    assert select(client, "untag", [a.pk], tags="sunset").status_code == 200
    assert listed_ids(client, "/tasks/?tag=sunset") == [b.task_id]
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["portrait", "sunset", "海报"]


def test_tag_suggestions_come_from_existing_tags(source, alice):
    task = make_task(source)
    _, client = alice
    select(client, "tag", [task.pk], tags="Sunset,sunrise, portrait")
    found = client.get(reverse("curation:tags"), {"q": "sun"}).json()["tags"]
    assert found == ["Sunset", "sunrise"]


def test_marks_give_stars_tags_and_prompt_masked(source, alice):
    task = make_task(source, prompt=f"a cat {SECRET}")
    _, client = alice
    select(client, "favourite", [task.pk])
    select(client, "tag", [task.pk], tags="cats")
    data = client.get(reverse("curation:marks"), {"pk": [task.pk]}).json()
    mark = data["marks"][str(task.pk)]
    assert mark["favourite"] is True and mark["tags"] == ["cats"]
    assert SECRET not in json.dumps(data) and "a cat" in mark["prompt"]
    assert data["rights"] == {
        "tag": True,
        "collect": True,
        "delete_collection": True,
        "share": True,
    }


@pytest.mark.parametrize(
    "query", ["pk=abc", "pk=%00", "pk=1e3", "pk=" + "9" * 40, "pk=²"], ids=lambda q: q[:12]
)
def test_bad_selections_get_a_clear_answer_never_a_500(alice, query):
    _, client = alice
    assert client.get(reverse("curation:marks") + "?" + query).status_code == 404
    assert client.get(reverse("curation:zip") + "?" + query).status_code == 404
    assert select(client, "favourite", [query[3:]]).status_code == 400
    assert client.get("/tasks/?" + query).status_code == 200  # the list names it as ignored


def test_every_curation_page_needs_a_login(source):
    task = make_task(source)
    anonymous = Client()
    for url in ("/collections/", "/shares/", "/curation/marks/?pk=1", "/curation/tags/",
                "/curation/download.zip?pk=1"):  # fmt: skip
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url, url
    for url in (f"/tasks/{task.task_id}/favourite/", f"/tasks/{task.task_id}/share/",
                "/curation/selection/"):  # fmt: skip
        assert anonymous.post(url).status_code == 302, url
    assert not Favourite.objects.exists() and not ShareLink.objects.exists()


# The team's data survives syncs and the proxy forgetting; a purge removes it


def curate(task, user):
    Favourite.objects.create(user=user, task=task)
    tag = Tag.objects.create(name="keep")
    TaskTag.objects.create(task=task, tag=tag)
    collection = Collection.objects.create(name="best")
    CollectionItem.objects.create(collection=collection, task=task, position=0)
    sharing.create(user, task=task)
    return collection


def curated(task):
    return (
        Favourite.objects.filter(task=task).count(),
        TaskTag.objects.filter(task=task).count(),
        CollectionItem.objects.filter(task=task).count(),
        ShareLink.objects.filter(task=task).count(),
    )


def test_a_sync_that_updates_a_task_keeps_its_tags_stars_and_collection_entries(source, alice):
    ingest(source, [record(1, status="IN_PROGRESS", progress="40%", finishTime=None)])
    task = Task.objects.get()
    curate(task, alice[0])

    counts, _ids = ingest(source, [record(1, prompt="changed upstream")])

    assert counts.updated == 1
    task.refresh_from_db()
    assert task.status == "SUCCESS" and "changed upstream" in task.raw
    assert curated(task) == (1, 1, 1, 1)
    assert "keep" not in task.raw  # never written into the record


def test_a_task_the_proxy_forgot_keeps_its_curation(start_sim, make_source, alice):
    sim = start_sim("novicezk", tasks=3)
    source = make_source(sim)
    sync_source(source, full=True)
    task = Task.objects.filter(source=source).first()
    curate(task, alice[0])
    sim.forget_all()

    run = sync_source(source, full=True)

    assert run.gone == 3
    task.refresh_from_db()
    assert task.gone_since is not None
    assert curated(task) == (1, 1, 1, 1)


def test_purge_removes_a_task_with_its_curation_and_keeps_the_collection(source, alice):
    old = make_task(source, task_id="1", submitted=timezone.now() - timedelta(days=90))
    new = make_task(source, task_id="2", submitted=timezone.now())
    collection = curate(old, alice[0])
    CollectionItem.objects.create(collection=collection, task=new, position=1)
    collection.cover = old
    collection.save()

    call_command("purge_tasks", "--older-than", "30", stdout=io.StringIO())

    assert not Task.objects.filter(pk=old.pk).exists()
    assert curated(old) == (0, 0, 0, 0)
    collection.refresh_from_db()
    assert collection.cover is None
    assert list(collection.items.values_list("task_id", flat=True)) == [new.pk]
    assert Tag.objects.filter(name="keep").exists()  # the team's tag stays


# Collections


def test_a_collection_is_built_from_a_selection_reordered_and_covered(source, alice):
    tasks = [make_task(source, task_id=f"17000000000000{n:02d}") for n in range(4)]
    _, client = alice
    answer = select(
        client, "collect", [tasks[2].pk, tasks[0].pk, tasks[1].pk], new_collection="Client A"
    ).json()
    collection = Collection.objects.get(name="Client A")
    assert answer["added"] == 3 and answer["collection"]["url"] == collection.get_absolute_url()
    assert collection.owner.username == "alice" and collection.cover_id == tasks[2].pk
    # Adding one already in it, and a new one: the new one goes last.
    select(client, "collect", [tasks[0].pk, tasks[3].pk], collection=collection.pk)

    def order():
        return list(collection.items.order_by("position").values_list("task_id", flat=True))

    assert order() == [tasks[2].pk, tasks[0].pk, tasks[1].pk, tasks[3].pk]
    url = collection.get_absolute_url()
    client.post(url, {"action": "down", "pk": tasks[2].pk})
    client.post(url, {"action": "cover", "pk": tasks[3].pk})
    client.post(url, {"action": "remove", "pk": tasks[1].pk})
    assert order() == [tasks[0].pk, tasks[2].pk, tasks[3].pk]
    collection.refresh_from_db()
    assert collection.cover_id == tasks[3].pk
    page = client.get(url)
    assert [t.pk for t in page.context["tasks"]] == order()
    client.post(url, {"action": "reorder", "pk": [tasks[3].pk, tasks[0].pk]})
    assert order() == [tasks[3].pk, tasks[0].pk, tasks[2].pk]


def test_someone_elses_own_collection_is_not_found(source, alice):
    bob = User.objects.create_user("bob")
    theirs = Collection.objects.create(name="bob's", owner=bob)
    team = Collection.objects.create(name="team")
    _, client = alice
    assert client.get(theirs.get_absolute_url()).status_code == 404
    assert (
        select(client, "collect", [make_task(source).pk], collection=theirs.pk).status_code == 400
    )
    names = [
        c["name"]
        for c in client.get("/collections/", HTTP_ACCEPT="application/json").json()["collections"]
    ]
    assert names == [team.name]


# Who may do what


def test_viewers_favourite_and_see_collections_but_neither_tag_nor_edit_nor_share(source, viewer):
    task = make_task(source)
    team = Collection.objects.create(name="team picks")
    CollectionItem.objects.create(collection=team, task=task, position=0)
    user, client = viewer

    assert select(client, "favourite", [task.pk]).status_code == 200
    assert client.get(team.get_absolute_url()).status_code == 200
    assert client.get("/collections/").status_code == 200
    assert select(client, "tag", [task.pk], tags="nope").status_code == 403
    assert select(client, "collect", [task.pk], new_collection="mine").status_code == 403
    assert client.post("/collections/", {"name": "x"}).status_code == 403
    assert client.post(team.get_absolute_url(), {"action": "delete"}).status_code == 403
    assert (
        client.post(team.get_absolute_url(), {"action": "remove", "pk": task.pk}).status_code == 403
    )
    assert client.post(f"/tasks/{task.task_id}/share/").status_code == 403
    assert client.post(f"/collections/{team.pk}/share/").status_code == 403
    rights = client.get(reverse("curation:marks"), {"pk": task.pk}).json()["rights"]
    assert rights == {"tag": False, "collect": False, "delete_collection": False, "share": False}
    assert Favourite.objects.filter(user=user).count() == 1
    assert (TaskTag.objects.count(), ShareLink.objects.count()) == (0, 0)
    assert Collection.objects.count() == 1 and team.items.count() == 1


def test_a_viewer_group_given_the_tag_permission_in_the_admin_may_tag(source, viewer):
    task = make_task(source)
    user, client = viewer
    Group.objects.get(name="viewer").permissions.add(Permission.objects.get(codename="add_tasktag"))
    assert select(client, "tag", [task.pk], tags="allowed").status_code == 200
    assert select(client, "collect", [task.pk], new_collection="mine").status_code == 403


# Share links


def test_a_shared_task_shows_only_its_archived_image_and_the_ticked_fields(source, alice, media):
    task = make_task(
        source,
        prompt=f"a lighthouse at dusk {SECRET}",
        caller=CALLER,
        account="1122334455",
        image_url="https://cdn.discordapp.com/attachments/1/2/live.png?ex=ffffffff",
        record={"state": CALLER, "notifyHook": f"http://mjsite/hooks/mj/{SECRET}/"},
    )
    other = make_task(source, task_id="1700000000000999", prompt="another task")
    archived(task, "a" * 40)
    archived(other, "b" * 40, b"other bytes")
    _, client = alice
    response = client.post(
        f"/tasks/{task.task_id}/share/",
        {"fields_given": "1", "fields": ["prompt", "submitted"], "days": "3"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201
    url = response.json()["url"]
    assert url.startswith("/s/")
    link = ShareLink.objects.get()
    assert link.fields == ["prompt", "submitted"]
    assert timedelta(days=2, hours=23) < link.expires - timezone.now() <= timedelta(days=3)

    anonymous = Client()
    page = anonymous.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert "a lighthouse at dusk" in html
    hidden_things = (
        SECRET, CALLER, "1122334455", source.base_url, "proxy.internal", "cdn.discordapp",
        "another task", other.task_id, "IMAGINE", '"id"', "notifyHook", "/media/",
    )  # fmt: skip
    for hidden in hidden_things:
        assert hidden not in html, hidden
    # The image is the archived copy, served through the link, to no one logged in.
    image = reverse("curation:shared_file", args=[url.split("/")[2], task.pk, "image"])
    assert image in html
    served = anonymous.get(image)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == b"\x89PNG fake original bytes"
    # Another task's file through this link: none.
    for which in ("image", "thumb", "m0"):
        other_file = reverse("curation:shared_file", args=[url.split("/")[2], other.pk, which])
        assert anonymous.get(other_file).status_code == 404
    assert anonymous.get(image.replace("/image", "/m0")).status_code == 404
    link.refresh_from_db()
    assert link.views == 1


def test_a_token_altered_by_one_character_is_refused(source, alice):
    task = make_task(source)
    link = sharing.create(alice[0], task=task)
    token = sharing.token_of(link)
    anonymous = Client()
    assert anonymous.get(f"/s/{token}/").status_code == 200
    for at in (0, len(token) // 3, token.index(".") + 1, len(token) - 1):
        changed = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        assert anonymous.get(f"/s/{changed}/").status_code == 404, at
    assert anonymous.get(f"/s/{link.key}/").status_code == 404  # the key without signature
    assert anonymous.get("/s/%00/").status_code == 404
    link.refresh_from_db()
    assert link.views == 1


def test_a_revoked_link_is_gone_at_once_and_an_expired_one_says_so(source, alice):
    task = make_task(source)
    user, client = alice
    link = sharing.create(user, task=task)
    token = sharing.token_of(link)
    anonymous = Client()
    assert anonymous.get(f"/s/{token}/").status_code == 200
    assert client.post(f"/s/{token}/revoke/").status_code == 302
    assert anonymous.get(f"/s/{token}/").status_code == 404

    later = sharing.create(user, task=task, days=1)
    ShareLink.objects.filter(pk=later.pk).update(expires=timezone.now() - timedelta(seconds=1))
    expired = anonymous.get(f"/s/{sharing.token_of(later)}/")
    assert expired.status_code == 404
    assert "This link has expired" in expired.content.decode()
    shares = client.get("/shares/").content.decode()
    assert "revoked" in shares and "expired" in shares


def test_only_the_creator_or_staff_revoke_a_link(source, alice):
    link = sharing.create(alice[0], task=make_task(source))
    token = sharing.token_of(link)
    _, bob = login("bob")
    assert bob.post(f"/s/{token}/revoke/").status_code == 403
    assert "/s/" not in bob.get("/shares/").content.decode()  # not his to list
    _, boss = login("boss", staff=True)
    assert boss.post(f"/s/{token}/revoke/").status_code == 302
    link.refresh_from_db()
    assert link.revoked is not None


def test_a_shared_collection_shows_its_tasks_in_order_and_no_others(source, alice, media):
    a = archived(
        make_task(source, task_id="1700000000000001", prompt="prompt one of two"), "1" * 40, b"one"
    )
    b = archived(
        make_task(source, task_id="1700000000000002", prompt="prompt two of two"), "2" * 40, b"two"
    )
    make_task(source, task_id="1700000000000003", prompt="not in it")
    _, client = alice
    select(client, "collect", [b.pk, a.pk], new_collection="Lookbook <b>")
    collection = Collection.objects.get()
    response = client.post(
        f"/collections/{collection.pk}/share/", {"days": "7"}, HTTP_ACCEPT="application/json"
    )
    html = Client().get(response.json()["url"]).content.decode()
    assert "Lookbook &lt;b&gt;" in html
    assert (
        html.index("prompt two of two") < html.index("prompt one of two")
        and "not in it" not in html
    )


def test_share_days_out_of_range_are_refused(source, alice):
    task = make_task(source)
    _, client = alice
    for days in ("0", "366", "x"):
        response = client.post(f"/tasks/{task.task_id}/share/", {"days": days})
        assert response.status_code == 400, days
    assert not ShareLink.objects.exists()


# ZIP


def test_a_zip_of_a_selection_holds_the_archived_originals(source, alice, media):
    a = archived(make_task(source, task_id="1700000000000001"), "c" * 40, b"A" * 300_000)
    b = archived(make_task(source, task_id="1700000000000002"), "d" * 40, b"B" * 10)
    none = make_task(source, task_id="1700000000000003")  # nothing archived
    _, client = alice
    response = client.get(reverse("curation:zip"), {"pk": [a.pk, b.pk, none.pk]})
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["1700000000000002.png", "1700000000000001.png"]
        assert archive.read("1700000000000001.png") == b"A" * 300_000


def test_a_zip_above_the_limit_is_refused(source, alice, media, settings):
    settings.MJ_ZIP_MAX_MB = 1
    big = archived(make_task(source), "e" * 40, b"x" * (1024 * 1024 + 1))
    _, client = alice
    response = client.get(reverse("curation:zip"), {"pk": [big.pk]})
    assert response.status_code == 400
    assert "more than a download may hold" in response.content.decode()


def test_a_collection_zip_follows_its_order(source, alice, media):
    a = archived(make_task(source, task_id="1700000000000001"), "f" * 40, b"1")
    b = archived(make_task(source, task_id="1700000000000002"), "0" * 40, b"2")
    _, client = alice
    select(client, "collect", [a.pk, b.pk], new_collection="zip me")
    collection = Collection.objects.get()
    response = client.get(reverse("curation:zip"), {"collection": collection.pk})
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert archive.namelist() == ["1700000000000001.png", "1700000000000002.png"]
    assert client.get(reverse("curation:zip"), {"collection": "x"}).status_code == 404
