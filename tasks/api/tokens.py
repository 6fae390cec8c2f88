"""API tokens for the mirror API: made here, shown once, stored only as a SHA-256 hash."""

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from tasks.models import ApiToken

PREFIX_LENGTH = 8
MAX_TOKEN_LENGTH = 200  # anything longer is no token of ours; not worth hashing
# last_used is a hint for people reviewing tokens, not an audit log: writing it on
# every request would turn each read of the API into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(user):
    """Make a token for a user; return (the ApiToken row, the clear token to show once)."""
    token = secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, token_hash=hash_token(token), prefix=token[:PREFIX_LENGTH]
    )
    return row, token


def user_for_token(token):
    """The active user a live token belongs to, or None. One query (two once a minute)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(token), revoked=False, user__is_active=True)
        .first()
    )
    if row is None:
        return None
    now = timezone.now()
    if row.last_used is None or row.last_used < now - LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests write it once between them.
        ApiToken.objects.filter(pk=row.pk).filter(
            Q(last_used__isnull=True) | Q(last_used__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used=now)
    return row.user
