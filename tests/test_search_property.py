"""The text search against a plain scan, on random prompts and queries.

Each example stores random prompts (Latin words sharing prefixes, accented and mixed-case
letters, CJK runs, punctuation, digits), then asks the database's index (FTS5 on SQLite,
tsvector on PostgreSQL) and compares what it finds with a scan in Python of the same rows,
by the rules tasks/db/search.py documents: the text normalised (search.normalise), the
query's whitespace-separated parts each a phrase that must all match, the last word of a
part also matching as a prefix unless it is a CJK character; or the task id itself.

The task list is compared too: its first page and its status chips, with the page, the
facet sample and "common" shrunk so that a handful of rows takes the paths a million rows
take (on SQLite: the newest hits first, then all of them when those fall short).
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.db import search
from tasks.models import Source, Task
from tasks.web import views

pytestmark = pytest.mark.django_db

# Few letters, so that words share prefixes of every length (the prefix indexes cover one to
# five characters, longer ones are looked up in the vocabulary).
LATIN = st.one_of(
    st.sampled_from(["a", "ab", "abc", "abcab", "abcabc", "abcabcé", "abcabcab", "bé", "Ébé"]),
    st.text(alphabet="abcÉé", min_size=1, max_size=8),
)
CJK = st.text(alphabet="灯塔猫山", min_size=1, max_size=3)
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=4)
WORD = st.one_of(LATIN, LATIN.map(str.upper), CJK, DIGITS)
PUNCTUATION = st.sampled_from([" ", " ", ", ", "-", ":", "“", "”", "，", "。", '"', "--"])
TEXT = st.lists(st.tuples(WORD, PUNCTUATION), min_size=1, max_size=8).map(
    lambda pairs: "".join(word + mark for word, mark in pairs)
)
STATUSES = st.sampled_from(["SUCCESS", "FAILURE", "IN_PROGRESS"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Submit times within a few hours (the SQLite index is keyed by the hour), or none.
SUBMITTED = st.one_of(st.none(), st.integers(0, 5 * 60).map(lambda m: T0 + timedelta(minutes=m)))
TASK = st.fixed_dictionaries(
    {
        "prompt": TEXT,
        "prompt_en": TEXT,
        "description": TEXT,
        "fail_reason": st.one_of(st.just(""), TEXT),
        "status": STATUSES,
        "submitted": SUBMITTED,
    }
)
SIZE = 3  # the page's rows and the facets' sample, shrunk


def part_matches(words, part):
    *head, last = part
    for i in range(len(words) - len(part) + 1):
        candidate = words[i : i + len(part)]
        if candidate[:-1] != head:
            continue
        word = candidate[-1]
        if word == last or (search.is_prefixable(last) and word.startswith(last)):
            return True
    return False


def scan(tasks, query):
    """The tasks the search must find, by reading every one of them."""
    parts = search.query_parts(query)
    text_id = query.strip()[:64]
    found = []
    for task in tasks:
        words = search.normalise(
            " ".join([task.prompt, task.prompt_en, task.description, task.fail_reason])
        ).split()
        if task.task_id == text_id or (parts and all(part_matches(words, p) for p in parts)):
            found.append(task)
    return found


def newest_first(tasks):
    # The list's order: newest submit time first, then the highest id; no submit time last.
    keyed = sorted((t for t in tasks if t.submitted), key=lambda t: (t.submitted, t.pk))
    bare = sorted((t for t in tasks if not t.submitted), key=lambda t: t.pk)
    return keyed[::-1] + bare[::-1]


def store(source, rows):
    Task.objects.all().delete()
    Task.objects.bulk_create(
        Task(source=source, task_id=f"17000000{n:05d}", raw="{}", raw_hash="x", **row)
        for n, row in enumerate(rows)
    )
    return list(Task.objects.order_by("pk"))  # in the rows' order: what is drawn from them next


def query_from(data, tasks):
    """A query: often words cut from the stored prompts (so that it finds something),
    sometimes anything at all, sometimes a task's id."""
    texts = [" ".join([t.prompt, t.prompt_en, t.description]) for t in tasks]
    words = [w for text in texts for w in search.normalise(text).split()]
    word = st.sampled_from(words)
    cut = word.flatmap(lambda w: st.integers(1, len(w)).map(lambda n: w[:n]))
    part = st.one_of(word, cut, cut.map(str.upper), WORD) if words else WORD
    chunks = st.lists(st.tuples(part, PUNCTUATION), min_size=1, max_size=3)
    query = chunks.map(lambda pairs: "".join(word + mark for word, mark in pairs))
    ids = st.sampled_from([t.task_id for t in tasks]) if tasks else query
    return data.draw(st.one_of(query, query, query, ids))


@pytest.fixture
def source(db):
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


@pytest.fixture
def shrunk(monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", SIZE)
    monkeypatch.setattr(views, "FACET_SAMPLE", SIZE)
    monkeypatch.setattr(search, "COMMON", SIZE + 1)


@pytest.fixture
def viewer(client):
    user = get_user_model().objects.create_user("viewer", is_superuser=True)
    client.force_login(user)
    return client


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(TASK, min_size=1, max_size=12), data=st.data())
@pytest.mark.parametrize("indexed", [search.LONGEST_INDEXED_PREFIX, 1])
def test_the_index_finds_what_a_scan_finds(source, monkeypatch, indexed, rows, data):
    # With indexed=1, most prefixes take the vocabulary's path (fts5_query_sql) on SQLite.
    monkeypatch.setattr(search, "LONGEST_INDEXED_PREFIX", indexed)
    tasks = store(source, rows)
    query = query_from(data, tasks)

    found = Task.objects.filter(search.text_filter(query)).values_list("pk", flat=True)

    assert sorted(found) == sorted(t.pk for t in scan(tasks, query)), query


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(TASK, min_size=8, max_size=30), data=st.data())
def test_the_list_shows_the_newest_tasks_a_scan_finds(source, shrunk, viewer, rows, data):
    tasks = store(source, rows)
    query = query_from(data, tasks)
    status = data.draw(st.one_of(st.none(), STATUSES))  # narrows the page, not the chips
    found = newest_first(scan(tasks, query))
    expected = [t for t in found if status in (None, t.status)][:SIZE]

    params = {"q": query} if status is None else {"q": query, "status": status}
    response = viewer.get(reverse("tasks:list"), params)

    assert [t.pk for t in response.context["tasks"]] == [t.pk for t in expected], query
    chips = {chip["value"]: chip["n"] for chip in response.context["statuses"]}
    counts = Counter(t.status for t in found[:SIZE])
    if status is not None:
        counts.setdefault(status, 0)  # a chosen value always has its chip
    assert chips == counts, query
