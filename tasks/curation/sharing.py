"""Share links: a signed token in the URL, a row that says what it shows and until when.

The token is the row's random `key` signed with SECRET_KEY (django.core.signing), so a
token altered by one character fails its signature before the database is asked, and the
"Shared links" page can show each link again. Revoking or expiring is the row's; both
take effect at the next request. Rotating SECRET_KEY ends every link.
"""

import secrets
from datetime import timedelta

from django.core import signing
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from tasks.models import ShareLink

SALT = "tasks.curation.share"
DEFAULT_DAYS = 7
MAX_DAYS = 365
SIGNER = signing.Signer(salt=SALT, sep=".")


class Gone(Exception):
    """The link existed and has expired: the page says so (still a 404, as CONTRACT has it)."""


def create(user, *, task=None, collection=None, days=DEFAULT_DAYS, fields=ShareLink.FIELDS):
    return ShareLink.objects.create(
        key=secrets.token_urlsafe(16),
        task=task,
        collection=collection,
        fields=[name for name in ShareLink.FIELDS if name in fields],
        expires=timezone.now() + timedelta(days=days),
        created_by=user,
    )


def token_of(link):
    return SIGNER.sign(link.key)


def path_of(link):
    return reverse("curation:shared", args=[token_of(link)])


def find(token):
    """The live link of this token; None for a wrong, tampered or revoked one; Gone for an
    expired one."""
    try:
        key = SIGNER.unsign(token)
    except signing.BadSignature:
        return None
    link = ShareLink.objects.filter(key=key, revoked__isnull=True).first()
    if link is None:
        return None
    if link.expires <= timezone.now():
        raise Gone
    return link


def count_view(link):
    now = timezone.now()
    # One UPDATE: views at the same moment all count.
    ShareLink.objects.filter(pk=link.pk).update(views=F("views") + 1, last_viewed=now)


def revoke(link):
    if link.revoked is None:
        link.revoked = timezone.now()
        link.save(update_fields=["revoked"])


def may_revoke(user, link):
    return user.is_staff or link.created_by_id == user.pk
