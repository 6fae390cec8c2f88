"""The OpenAPI 3.1 description of the mirror API, served at /mj/openapi.json.

The task schema is deliberately loose: a task is whatever the proxy sent, and the
typed properties below only say what tasks.ingest.records accepts for the fields it reads.
"""

import copy
import functools

from tasks.api.params import MAX_DIGITS, MAX_IDS, MAX_LIMIT
from tasks.web.filters import MAX_VALUES


def nullable(*types):
    return {"type": [*types, "null"]}


TASK = {
    "type": "object",
    "description": (
        "The record exactly as the proxy last sent it: every key, in the proxy's order, "
        "unknown fields included. Fields vary by proxy (novicezk, plus, trueai, new-api). "
        "The one change: wherever a source's secret or notify-hook token appears inside a "
        "string (proxies echo the hook URL in `notifyHook` and `properties.notifyHook`), "
        "it reads `•••`."
    ),
    "required": ["id"],
    "additionalProperties": True,
    "properties": {
        "id": {"type": ["string", "integer"], "description": "16 digits, usually a string"},
        "action": {**nullable("string"), "examples": ["IMAGINE", "UPSCALE"]},
        "status": {**nullable("string"), "examples": ["SUBMITTED", "IN_PROGRESS", "SUCCESS"]},
        "prompt": nullable("string"),
        "promptEn": nullable("string"),
        "description": nullable("string"),
        "state": nullable("string"),
        "submitTime": {
            **nullable("number", "string"),
            "description": 'epoch milliseconds (0 or "" from relays while unset)',
        },
        "startTime": nullable("number", "string"),
        "finishTime": nullable("number", "string"),
        "progress": {**nullable("string", "number"), "examples": ["0%", "31%", "100%"]},
        "imageUrl": nullable("string"),
        "failReason": nullable("string"),
        "properties": {"type": ["object", "string", "null"]},
    },
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what went wrong, in words"}},
    "additionalProperties": True,
}


def json_content(schema):
    return {"application/json": {"schema": schema}}


def error(description):
    return {
        "description": description,
        "content": json_content({"$ref": "#/components/schemas/Error"}),
    }


TASKS = {"type": "array", "items": {"$ref": "#/components/schemas/Task"}}

SOURCE_PARAM = {
    "name": "source",
    "in": "query",
    "required": False,
    "description": (
        "Only tasks of the source with this name (for an id several sources share); "
        "empty means every source."
    ),
    "schema": {"type": "string", "maxLength": 50, "pattern": "^[-a-zA-Z0-9_]*$"},
}

NEXT_PAGE_HEADERS = {
    "X-Next-Cursor": {
        "description": "The next page's cursor; absent on the last page.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page\'s URL, as `<URL>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    },
}

ALLOW_HEADER = {
    "Allow": {"description": "The methods this path takes.", "schema": {"type": "string"}}
}


def wrong_method():
    return {**error("The path does not take this method."), "headers": ALLOW_HEADER}


COMMON_ERRORS = {
    "401": error("No credentials, or a token that is unknown, revoked or of an inactive user."),
    "404": error("No source has the name given in `source`."),
    "405": wrong_method(),
}

# Ids of the sample records in tests/fixtures/facts_*.json (novicezk's documented sample
# and odd values seen in the wild), which tests/test_api_schema.py stores: schemathesis
# sends these examples, so it checks real task bodies too.
EXAMPLE_ID = "14001929738841620"
EXAMPLE_IDS = [EXAMPLE_ID, "0400192973884162", "1700000000000001", "1"]


# Midjourney's parameters and who asked, as tasks/ingest/derive.py reads them from records.
NUMBER = "[0-9]{1,3}([.][0-9]{1,3})?"
PARAMETER_FILTERS = (
    ("mode", "The speed the task ran at.", {"enum": ["fast", "relax", "turbo"]}, True),
    (
        "version",
        "The model version, as after `--v` or `--niji`.",
        {"pattern": f"^((v ?)?{NUMBER}|niji( {NUMBER})?)$", "examples": ["6.1", "niji 6"]},
        True,
    ),
    (
        "ar",
        "The aspect ratio, as after `--ar`.",
        {"pattern": "^[0-9]{1,5}:[0-9]{1,5}$", "examples": ["16:9", "2:3"]},
        True,
    ),
    (
        "bot",
        "The bot.",
        {"pattern": "^[A-Z][A-Z_]{0,19}$", "examples": ["MID_JOURNEY", "NIJI_JOURNEY"]},
        True,
    ),
    (
        "account",
        "The account's Discord channel id.",
        {"pattern": "^[0-9A-Za-z_.:-]{1,64}$", "examples": ["1300000000000000001"]},
        True,
    ),
    (
        "caller",
        "Who asked: `userId`, else new-api's `user_id`, else `state`.",
        {"maxLength": 200},
        False,
    ),
)


def parameter_filters():
    out = []
    for name, meaning, item, commas in PARAMETER_FILTERS:
        how = "repeat, or separate by commas" if commas else "repeat"
        out.append(
            {
                "name": name,
                "in": "query",
                "description": (
                    f"{meaning} Any of these values ({how}; at most {MAX_VALUES}); a value "
                    "that is no such thing is refused with 400."
                ),
                "schema": {
                    "type": "array",
                    "items": {"type": "string", **item},
                    "maxItems": MAX_VALUES,
                },
                "style": "form",
                "explode": True,
            }
        )
    return out


@functools.cache
def _schema():
    repeatable = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_VALUES}
    moment = {
        "type": "string",
        "anyOf": [{"format": "date"}, {"format": "date-time"}, {"maxLength": 0}],
        "description": (
            "An ISO 8601 date (meaning its midnight) or datetime; without an offset it is read "
            "in the site's time zone. Empty means no bound."
        ),
        "examples": ["2024-05-01", "2024-05-01T08:30:00Z"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mjsite mirror API",
            "version": "1.0",
            "description": (
                "The read endpoints of a Midjourney proxy (novicezk/midjourney-proxy and "
                "compatibles), served from mjsite's history of every task it has seen. "
                "Bodies are byte-for-byte the stored records, except that each source's "
                "secret and notify-hook token read `•••` wherever they appear inside a string. "
                "Authenticate with a token from "
                "`manage.py create_api_token USERNAME`, or a logged-in session."
            ),
        },
        "security": [{"mjApiSecret": []}, {"bearer": []}, {"session": []}],
        "paths": {
            "/mj/task/list": {
                "get": {
                    "operationId": "listTasks",
                    "summary": "Tasks, newest first by submit time, in pages",
                    "description": (
                        "Newest first by submit time, then by id; tasks without a submit time "
                        "last. At most `limit` tasks per response; when more follow, the "
                        'response carries `X-Next-Cursor` and a `Link: <...>; rel="next"` '
                        "URL that keeps the filters. The body stays a bare JSON array, as "
                        "the proxy's."
                    ),
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "description": (
                                "Any of these statuses (repeat, or separate by commas; at most "
                                f"{MAX_VALUES} different ones)."
                            ),
                            "schema": repeatable,
                            "style": "form",
                            "explode": True,
                        },
                        {
                            "name": "action",
                            "in": "query",
                            "description": (
                                "Any of these actions (repeat, or separate by commas; at most "
                                f"{MAX_VALUES} different ones)."
                            ),
                            "schema": repeatable,
                            "style": "form",
                            "explode": True,
                        },
                        {
                            "name": "submitted_after",
                            "in": "query",
                            "description": "Submitted at or after this moment.",
                            "schema": moment,
                        },
                        {
                            "name": "submitted_before",
                            "in": "query",
                            "description": "Submitted before this moment.",
                            "schema": moment,
                        },
                        {
                            "name": "favourite",
                            "in": "query",
                            "description": "`1`: only the tasks the token's user has starred.",
                            "schema": {"type": "string", "enum": ["", "1"]},
                        },
                        {
                            "name": "tag",
                            "in": "query",
                            "description": (
                                "Tasks with any of these team tags (repeat, or separate by "
                                f"commas; at most {MAX_VALUES} different ones)."
                            ),
                            "schema": repeatable,
                            "style": "form",
                            "explode": True,
                        },
                        *parameter_filters(),
                        SOURCE_PARAM,
                        {
                            "name": "limit",
                            "in": "query",
                            "description": f"Tasks per page, at most {MAX_LIMIT} (the default).",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": (
                                "Where the page starts: the `X-Next-Cursor` of the previous "
                                "page. Opaque; pass it back unchanged. The walk is keyed on "
                                "the submit time: from the first page to the last it serves "
                                "each task that existed when it began exactly once, provided "
                                "that task's submit time does not change during the walk; "
                                "tasks added meanwhile may or may not be served. A task whose "
                                "submit time changes moves in the list. Typically a task "
                                'without one (relays send `0` or `""` until it is submitted) '
                                "waits among the undated tasks at the end of the list; when "
                                "it gains one it moves near the start, into pages already "
                                "read, and this walk never serves it. (A task moving into "
                                "pages not yet read would be served twice.) To be sure of "
                                "such tasks, fetch them by id (list-by-condition) or start "
                                "a new walk."
                            ),
                            "schema": {
                                "type": "string",
                                "pattern": "^(([0-9]{1,17}|null)[.][0-9]{1,18})?$",
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "A page of tasks.",
                            "headers": NEXT_PAGE_HEADERS,
                            "content": json_content(TASKS),
                        },
                        "400": error("A parameter is invalid; the error says which and why."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/mj/task/queue": {
                "get": {
                    "operationId": "taskQueue",
                    "summary": "Tasks waiting or running upstream, oldest first",
                    "parameters": [SOURCE_PARAM],
                    "responses": {
                        "200": {"description": "The queue.", "content": json_content(TASKS)},
                        **COMMON_ERRORS,
                    },
                }
            },
            "/mj/task/list-by-condition": {
                "post": {
                    "operationId": "tasksByIds",
                    "summary": "The tasks with these ids",
                    "description": (
                        "The known ids in request order; unknown ids are left out. An id that "
                        "several sources share: the version that changed last, unless `source` "
                        "picks one. A body without `ids` gives `[]`, as the proxy does."
                    ),
                    "parameters": [SOURCE_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "ids": {
                                            "type": ["array", "null"],
                                            "maxItems": MAX_IDS,
                                            "items": {"type": ["string", "integer"]},
                                        }
                                    },
                                },
                                "examples": {
                                    "ids": {
                                        "summary": "Some known ids and an unknown one",
                                        "value": {"ids": EXAMPLE_IDS},
                                    }
                                },
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "The known tasks.", "content": json_content(TASKS)},
                        "400": error(
                            f"The body is not acceptable JSON (malformed, or a number of more "
                            f"than {MAX_DIGITS:,} digits), not an object, or `ids` is not a list "
                            f"of at most {MAX_IDS} strings or integers."
                        ),
                        "403": error(
                            "A logged-in browser session sent no valid CSRF token (a token "
                            "header needs none)."
                        ),
                        "413": error("The body is far larger than any valid request."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/mj/task/{id}/fetch": {
                "get": {
                    "operationId": "fetchTask",
                    "summary": "One task",
                    "description": (
                        "An id that several sources share: the version that changed last, "
                        "unless `source` picks one."
                    ),
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1},
                            "examples": {"task": {"value": EXAMPLE_ID}},
                        },
                        SOURCE_PARAM,
                    ],
                    "responses": {
                        "200": {
                            "description": "The task.",
                            "content": json_content({"$ref": "#/components/schemas/Task"}),
                        },
                        "401": COMMON_ERRORS["401"],
                        "404": {
                            "description": (
                                "No task with this id (in the source named, when `source` is "
                                "given), or no source with that name; `id` is the id asked for."
                            ),
                            "content": json_content(
                                {
                                    "$ref": "#/components/schemas/Error",
                                    "required": ["error", "id"],
                                    "properties": {"id": {"type": "string"}},
                                    "examples": [
                                        {"error": "task not found", "id": "1"},
                                        {"error": "no source named 'nope'", "id": "1"},
                                    ],
                                }
                            ),
                        },
                        "405": COMMON_ERRORS["405"],
                    },
                }
            },
        },
        "components": {
            "schemas": {"Task": TASK, "Error": ERROR},
            "securitySchemes": {
                "mjApiSecret": {"type": "apiKey", "in": "header", "name": "mj-api-secret"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
        },
    }


def schema():
    return copy.deepcopy(_schema())
