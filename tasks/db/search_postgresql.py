"""The text search's plan on PostgreSQL (tasks/db/search.py has the rest: the normalised
text, the `search_doc` column and its GIN index `task_search_idx`, the tsquery).

Reading a task's row costs about ten times what testing its search document in an index
costs, and the GIN index costs about a microsecond per posting of every word a query names
(0.1-0.3 s for a word in a quarter of a million tasks), so neither "walk the list's index and
test every row" nor "ask the GIN index" suits every query. A query is sized on the newest
PROBE tasks, read from `task_search_recent_idx` (submit time, id, search document; migration
0022) alone: a common query walks that index, newest first, to its newest COMMON hits, which
the first page and the facet counts read (TextSearch.recent); a rare one is looked up in the
GIN index. So the rows read are about the newest hits' rows. One statement (SIZING_SQL) does
this for most queries.
"""

from django.apps import apps
from django.db import connections
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

PROBE = 4000
WALK = 100_000  # index entries a walk reads at most (about 0.1 s at a million tasks)
DENSE = PROBE // 25  # hits among the PROBE newest tasks for a page to walk (see below)
PROBE_SQL = (
    "SELECT count(*) AS n FROM (SELECT search_doc FROM tasks_task"
    " ORDER BY submitted DESC, id DESC LIMIT %s) AS newest"
    " WHERE search_doc @@ to_tsquery('simple', %s)"
)
# The bound on the walk also keeps the planner from a parallel plan, whose start costs more
# than the walk.
WALK_SQL = (
    "SELECT id, submitted FROM (SELECT id, submitted, search_doc FROM tasks_task"
    " WHERE submitted IS NOT NULL ORDER BY submitted DESC, id DESC LIMIT %s) AS newest"
    " WHERE search_doc @@ to_tsquery('simple', %s) LIMIT %s"
)
# A CTE is planned for all its rows (the GIN index), not for the LIMIT (a walk).
FEW_SQL = (
    "WITH hits AS MATERIALIZED (SELECT id FROM tasks_task"
    " WHERE search_doc @@ to_tsquery('simple', %s)) SELECT id FROM hits LIMIT %s"
)
# Usually the one query a search costs: the probe, then (PostgreSQL runs a sub-select only
# when a CASE reaches it) either the walk, its last submit time and the tasks named by id
# since then, or the few hits.
SIZING_SQL = f"""
WITH walk AS MATERIALIZED ({WALK_SQL})
SELECT n,
    CASE WHEN n >= %s THEN ARRAY(SELECT id FROM walk) END,
    CASE WHEN n >= %s THEN (SELECT min(submitted) FROM walk) END,
    CASE WHEN n >= %s THEN ARRAY(SELECT id FROM tasks_task WHERE task_id = %s
        AND submitted >= (SELECT min(submitted) FROM walk)) END,
    CASE WHEN n < %s THEN ARRAY({FEW_SQL}) END
FROM ({PROBE_SQL}) AS probe
"""  # noqa: S608 (constant SQL, the values are bound parameters)
FOUND = "search_doc @@ to_tsquery('simple', %s)"
# "IS TRUE" hides the match from the GIN index: the planner walks an index in list order.
WALKED = "(search_doc @@ to_tsquery('simple', %s)) IS TRUE"


def postgresql_search(query, task_id, using, many):
    """The fields of search.TextSearch for a tsquery (search.tsquery) and, unless None,
    the task whose id is `task_id`, on PostgreSQL; `many` is search.COMMON. (Fields, not
    the TextSearch itself: tasks/db/search.py imports this module, not the other way.)"""
    by_id = Q(task_id=task_id) if task_id is not None else Q(pk__in=[])
    # Hits among the PROBE newest tasks from which WALK entries are expected to hold `many`.
    walkable = max(many * PROBE // WALK, 1)
    with connections[using].cursor() as cursor:
        cursor.execute(
            SIZING_SQL,
            [WALK, query, many, *[walkable] * 3, task_id, walkable, query, many + 1]
            + [PROBE, query],
        )
        probed, walked, since, named, few = cursor.fetchone()
        if walked is not None and len(walked) < many:  # the hits thin out: count them
            cursor.execute(FEW_SQL, [query, many + 1])
            few = [pk for (pk,) in cursor.fetchall()]
        if few is not None and len(few) <= many:
            return (by_id | Q(id_among(few)),)
        if walked is None:  # thousands of hits, too few among the newest tasks to tell
            cursor.execute(WALK_SQL, [WALK, query, many])
            newest = cursor.fetchall()
            walked = [pk for pk, _ in newest]
            if len(walked) == many:
                since = newest[-1][1]
                tasks = apps.get_model("tasks", "Task").objects.using(using)
                named = list(tasks.filter(by_id, submitted__gte=since).values_list("pk", flat=True))
    if len(walked) < many:
        # Thousands of old hits: the planner's choice between the indexes.
        found = RawSQL(FOUND, [query], output_field=BooleanField())  # noqa: S611 (bound)
        return (by_id | Q(found),)
    condition = by_id | Q(RawSQL(WALKED, [query], output_field=BooleanField()))  # noqa: S611
    # The newest hits and the tasks named by id since then. The facet counts, which read
    # most of them, fetch them by id. So does a page, unless they are DENSE among the newest
    # tasks: then it walks the list's index and keeps the rows among them, reading a few
    # hundred ("id + 0": else the planner, which underrates how many match, fetches them all).
    ids = walked + named
    by_ids = Q(submitted__gte=since) & Q(id_among(ids))
    if probed >= DENSE:
        recent = Q(submitted__gte=since) & Q(id_among(ids, '"tasks_task"."id" + 0'))
        return condition, since, recent, by_ids
    return condition, since, by_ids, by_ids


def id_among(ids, column='"tasks_task"."id"'):
    # One array parameter rather than Django's one per id: 2,000 ids cost milliseconds of
    # Python in each query that reads them.
    return RawSQL(f"{column} = ANY(%s)", [ids], output_field=BooleanField())  # noqa: S611
