"""How a task's status looks on the pages: the CSS class of its badge and chip."""

STATUS_CLASSES = {
    "SUCCESS": "ok",
    "FAILURE": "bad",
    "CANCEL": "muted",
    "IN_PROGRESS": "run",
    "SUBMITTED": "wait",
    "NOT_START": "wait",
    "MODAL": "wait",
}


def status_class(status):
    return STATUS_CLASSES.get(status, "other")
