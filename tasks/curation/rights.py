"""Who may change the team's curation.

Everyone keeps their own favourites: no permission is asked. Tags, collections and share
links are for every user who is not a viewer; a member of the `viewer` group may do one
of them only when given its permission (to them or another group of theirs, in the
admin). Superusers may do everything.
"""

TAG = "tasks.add_tasktag"  # tag and untag tasks (creates tags as needed)
COLLECT = "tasks.change_collection"  # create collections, add, reorder, cover, rename
DELETE_COLLECTION = "tasks.delete_collection"
SHARE = "tasks.add_sharelink"
VIEWER_GROUP = "viewer"


def is_viewer(user):
    # Cached on the user object: a page asks several times.
    if not hasattr(user, "_is_viewer"):
        user._is_viewer = user.groups.filter(name=VIEWER_GROUP).exists()
    return user._is_viewer


def may(user, perm):
    if not user.is_authenticated:
        return False
    return user.has_perm(perm) or not is_viewer(user)


def rights_of(user):
    """What the pages offer this user (templates and curation.js read it)."""
    return {
        "tag": may(user, TAG),
        "collect": may(user, COLLECT),
        "delete_collection": may(user, DELETE_COLLECTION),
        "share": may(user, SHARE),
    }
