"""One masking step for every way out: pages, exports, admin, API and logs.

A source's secret and its notify-hook token can reach a record in any of its texts: the
proxy echoes the hook URL, and a caller can paste a secret into a prompt that then comes
back in the fail reason. Each is masked however it is written (quotes, backslashes,
non-ASCII, a short value) on every page and in every export, while `raw` keeps the
record exactly as received.
"""

import html
import json
import logging

import pytest
from django.urls import reverse

from tasks.models import InvalidRecord, Source, Task
from tasks.redaction import MASK, Masker
from tests.test_security import admin_pages, all_pages, body_of, client_for, make_user

pytestmark = pytest.mark.django_db

TASK_ID = "1700000000000001"
SECRETS = {
    "quote, backslash and non-ASCII": 'pa"ss\\wörd-密钥',
    "short": "Qz!",
    "non-ASCII only": "ß¤",
    "an escape's look-alike": "x\\u00e9y",
}


def written_forms(secret):
    """Every way a page or export could spell the secret."""
    return {
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


@pytest.fixture(params=list(SECRETS), ids=list(SECRETS))
def planted(request, client):
    secret = SECRETS[request.param]
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret=secret)
    hook = reverse("hooks:receive", args=[source.hook_token])
    record = {
        "id": TASK_ID,
        "action": "IMAGINE",
        "status": "FAILURE",
        "prompt": f"lighthouse {secret} at dusk",
        "promptEn": f"lighthouse at dusk {source.hook_token}",
        "description": f"/imagine {secret}",
        "state": secret,
        "failReason": f"Banned prompt: {secret}",
        "submitTime": 1_700_000_000_000,
        "finishTime": 1_700_000_065_000,
        "progress": "100%",
        "notifyHook": f"https://mjsite.example{hook}",
        "properties": {"finalPrompt": f"dusk {secret}", secret: "as a key"},
        "extra": {"nested": [secret]},
    }
    body = json.dumps(record, ensure_ascii=False)
    answer = client.post(hook, body, content_type="application/json")
    assert answer.status_code == 200, answer.content
    invalid = json.dumps({"id": "1700000000000002", "status": 7, "prompt": secret})
    assert client.post(hook, invalid, content_type="application/json").status_code == 400
    return {"source": source, "secrets": [secret, source.hook_token], "body": body, "bad": invalid}


def assert_masked(text, planted, where):
    for secret in planted["secrets"]:
        for form in written_forms(secret):
            assert form not in text, (where, form)


def test_no_page_or_export_shows_a_secret_however_it_is_written(planted):
    task = Task.objects.get(task_id=TASK_ID)
    for user in (make_user("boss", superuser=True), make_user("viewer", viewer=True)):
        client = client_for(user)
        for url in [*all_pages(task), reverse("tasks:list") + "?status=FAILURE"]:
            response = client.get(url)
            assert response.status_code == 200, url
            assert_masked(body_of(response), planted, (user.username, url))
    page = client.get(task.get_absolute_url()).content.decode()
    assert f"lighthouse {MASK} at dusk" in page
    assert f"Banned prompt: {MASK}" in page


def test_no_admin_page_shows_a_secret_however_it_is_written(planted):
    source = planted["source"]
    source_page = reverse("admin:tasks_source_change", args=[source.pk])
    for user in (make_user("boss", superuser=True), make_user("sv", staff=True, viewer=True)):
        client = client_for(user)
        for url in admin_pages():
            response = client.get(url)
            if response.status_code == 403:
                continue
            assert response.status_code == 200, url
            text = body_of(response)
            if user.is_superuser and url == source_page:
                # Its editors see the hook path they must give the proxy; never the secret.
                text = text.replace(source.hook_token, "")
            assert_masked(text, planted, (user.username, url))


def test_the_api_masks_inside_strings_and_keeps_the_rest(planted, client):
    client.force_login(make_user("boss", superuser=True))
    for url in (reverse("api:list"), reverse("api:fetch", args=[TASK_ID])):
        text = client.get(url).content.decode()
        assert_masked(text, planted, url)
        json.loads(text)


def test_the_stored_record_stays_exactly_as_received(planted, client):
    client.force_login(make_user("boss", superuser=True))
    client.get(Task.objects.get(task_id=TASK_ID).get_absolute_url())
    task = Task.objects.get(task_id=TASK_ID)
    assert task.raw == planted["body"]
    assert planted["secrets"][0] in task.prompt
    assert InvalidRecord.objects.get().raw == planted["bad"]


def test_a_task_masked_for_display_is_never_saved(planted):
    task = Masker().task(Task.objects.get(task_id=TASK_ID))
    assert MASK in task.prompt
    with pytest.raises(ValueError, match="masked"):
        task.save()
    assert planted["secrets"][0] in Task.objects.get(task_id=TASK_ID).prompt


def test_log_lines_mask_every_secret_the_process_has_loaded(planted):
    from mjsite.logging_filters import MaskSecrets

    Source.objects.get()  # loads the secrets, as a sync pass does
    secret, token = planted["secrets"]
    record = logging.LogRecord("tasks", logging.WARNING, __file__, 1, "got %s", (secret,), None)
    try:
        raise ValueError(f"/hooks/mj/{token}/ said {secret}")
    except ValueError as exc:
        record.exc_info = (ValueError, exc, exc.__traceback__)
    MaskSecrets().filter(record)
    line = logging.Formatter().format(record)
    assert secret not in line and token not in line
    assert f"got {MASK}" in line


def test_the_admin_shows_not_one_character_of_a_secret():
    secret = "Zq9-long-enough-secret-W7k"
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret=secret)
    for user in (make_user("boss", superuser=True), make_user("sv", staff=True, viewer=True)):
        client = client_for(user)
        for url in (
            reverse("admin:tasks_source_changelist"),
            reverse("admin:tasks_source_change", args=[source.pk]),
        ):
            text = body_of(client.get(url))
            assert "Zq9" not in text and "W7k" not in text, (user.username, url)
            if url.endswith("/source/"):
                assert f"{MASK} (set)" in text
