"""The Discord accounts of one source: ask the proxy, drop the credentials, compare, write.

Called with an open client by the sync (tasks/ingest/sync.py: its own schedule,
MJ_ACCOUNT_MINUTES, and the end of every full pass). Where the accounts come from:
- novicezk 2.5+: GET /mj/account/list, a bare array; running and queued counts, which it
  does not report, from its /mj/task/queue grouped by properties.discordInstanceId;
- trueai v11: POST /mj/admin/accounts, every page, with the source's admin token.
A proxy without them (404, an HTML page, 401 without the admin token, a relay) is no
failure of the task sync: the source's AccountSync row says "not available" and why.

Every record is scrubbed (tasks/ingest/credentials.py) the moment it is decoded, before
anything is compared, written or logged; an error keeps only its message, which quotes
nothing the proxy sent (client.ProxyError), never its detail.
"""

import json
import logging
from collections import Counter

from django.db import transaction
from django.utils import timezone

from tasks.ingest.client import NoSuchEndpoint, ProxyError
from tasks.ingest.credentials import scrub
from tasks.models import Account, AccountEvent, AccountSync, SourceKind

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # trueai caps pageSize at 100
MAX_PAGES = 1000  # 100,000 accounts: a proxy that pages on forever stops here
STATE_FIELDS = ("enabled", "locked", "fast_exhausted", "disabled_reason")


class NotAvailable(Exception):
    """This source has no accounts to sync; str() says why, for everyone."""


def sync_accounts(source, client):
    """Sync the source's accounts and return its AccountSync. Never raises: whatever goes
    wrong is the accounts' own status, and the task sync goes on."""
    try:
        records, complete, queue_counts = fetch(source, client)
    except NotAvailable as exc:
        return note(source, available=False, reason=str(exc))
    except ProxyError as exc:
        log.warning("%s: accounts not synced: %s", source.name, exc)
        return note(source, available=False, reason=str(exc))
    except Exception as exc:
        log.exception("%s: the account sync crashed", source.name)
        return note(source, available=False, reason=f"internal error: {exc.__class__.__name__}")
    with transaction.atomic():
        # Written first: on SQLite the transaction holds the write lock from here, so two
        # account syncs of one source (schedule, full pass) never interleave their events.
        status = note(source, available=True, reason="", listed=len(records))
        store(source, records, complete, queue_counts)
    log.info("%s: %d accounts synced", source.name, len(records))
    return status


def note(source, available, reason, listed=0):
    status, _ = AccountSync.objects.update_or_create(
        source=source,
        defaults={
            "available": available,
            "reason": reason.replace("\x00", "")[:2000],
            "listed": listed,
            "checked": timezone.now(),
        },
    )
    return status


# Asking the proxy


def fetch(source, client):
    """(scrubbed account records, whether that is every account, running/queued by
    channel id or None)."""
    kind = source.kind
    if kind in (SourceKind.RELAY, SourceKind.NEWAPI):
        raise NotAvailable("not available: an API relay does not list Discord accounts")
    if kind == SourceKind.TRUEAI or (kind == SourceKind.AUTO and source.admin_token):
        try:
            records, complete = trueai_accounts(source, client)
            return records, complete, None
        except NoSuchEndpoint:
            if kind == SourceKind.TRUEAI:
                raise
    try:
        records = [scrub(item.value) for item in client.account_list()]
    except NoSuchEndpoint as exc:
        hint = (
            "; a trueai proxy lists them to its admin: set the source's admin token"
            if not source.admin_token
            else ""
        )
        raise NotAvailable(
            f"not available: {exc} (novicezk lists accounts since 2.5{hint})"
        ) from exc
    except ProxyError as exc:
        if exc.status in (401, 403):
            raise NotAvailable(f"not available: {exc}") from exc
        raise
    records = [r for r in records if isinstance(r, dict)]
    return records, True, queue_counts(client)


def trueai_accounts(source, client):
    if not source.admin_token:
        raise NotAvailable(
            "not available: trueai lists its accounts to its admin only; set the source's "
            "admin token (MJ_ADMIN_TOKEN for the default source)"
        )
    records = []
    for page in range(1, MAX_PAGES + 1):
        try:
            answer = scrub(client.admin_accounts(source.admin_token, page, PAGE_SIZE))
        except ProxyError as exc:
            if exc.status in (401, 403):
                raise NotAvailable(
                    f"not available: {exc.status} from the admin accounts endpoint: "
                    "check the source's admin token"
                ) from exc
            raise
        if not isinstance(answer, dict) or not isinstance(answer.get("list"), list):
            # trueai wraps a refusal in its Result envelope, with HTTP 200.
            raise ProxyError(
                f"{source.base_url}/mj/admin/accounts did not answer with a list of accounts"
            )
        records.extend(r for r in answer["list"] if isinstance(r, dict))
        pages = number((answer.get("pagination") or {}).get("pageCount"))
        if not answer["list"] or pages is None or page >= pages:
            return records, True
    return records, False  # stopped at MAX_PAGES: the rest are not gone


def queue_counts(client):
    """{channel id: (running, queued)} from /mj/task/queue; None without a queue."""
    try:
        items = client.queue()
    except ProxyError:
        return None  # the counts are a nicety; the accounts stand without them
    if items is None:
        return None
    running, queued = Counter(), Counter()
    for item in items:
        task = item.value if isinstance(item.value, dict) else {}
        props = task.get("properties") if isinstance(task.get("properties"), dict) else {}
        channel = str(props.get("discordInstanceId") or task.get("instanceId") or "")
        if channel:
            (running if task.get("status") == "IN_PROGRESS" else queued)[channel] += 1
    return {c: (running[c], queued[c]) for c in set(running) | set(queued)}


# Reading a record


def number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def count(value):
    value = number(value)
    return value if value is not None and value >= 0 else None


def text(value, size):
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).replace("\x00", "")[:size]


def health(record):
    """The columns of one (scrubbed) account record, novicezk's, plus's or trueai's."""
    props = record.get("properties") if isinstance(record.get("properties"), dict) else {}
    enabled = record.get("enable")
    status = record.get("status")  # plus: ENABLE, DISABLED, LISTEN_ONLY
    if isinstance(status, str) and status.upper() == "DISABLED":
        enabled = False
    channel = text(record.get("channelId") or record.get("id"), 64)
    fast = record.get("fastTimeRemaining")
    if fast is None:
        fast = props.get("Fast Time Remaining")
    day_fast, day_relax = number(record.get("dayFastCount")), number(record.get("dayRelaxCount"))
    today = None if day_fast is None and day_relax is None else (day_fast or 0) + (day_relax or 0)
    return {
        "channel_id": channel,
        "guild_id": text(record.get("guildId"), 64),
        "name": text(record.get("name") or record.get("remark"), 200),
        # trueai's enable is nullable: unset counts as enabled, as its load balancer reads it.
        "enabled": enabled is not False,
        "disabled_reason": text(record.get("disabledReason") or props.get("disabledReason"), 2000),
        "locked": record.get("lock") is True,
        "fast_exhausted": record.get("fastExhausted") is True,
        "fast_time_remaining": text(fast, 100),
        "today_draws": today,
        "day_draw_limit": number(record.get("dayDrawLimit")),
        "day_relax_limit": number(record.get("dayRelaxDrawLimit")),
        "running": count(record.get("runningCount")),
        "queued": count(record.get("queueCount")),
        "core_size": count(record.get("coreSize")),
        "queue_size": count(record.get("queueSize")),
    }


# Writing


def store(source, records, complete, queue_counts):
    now = timezone.now()
    held = {a.account_id: a for a in Account.objects.filter(source=source)}
    seen, events = set(), []
    for record in records:
        account_id = text(record.get("id") or record.get("channelId"), 64)
        if not account_id or account_id in seen:
            continue
        seen.add(account_id)
        fields = health(record)
        if queue_counts is not None:
            fields["running"], fields["queued"] = queue_counts.get(fields["channel_id"], (0, 0))
        fields["raw"] = json.dumps(record, ensure_ascii=False)
        account = held.get(account_id)
        if account is None:
            account = Account.objects.create(
                source=source, account_id=account_id, first_seen=now, last_seen=now, **fields
            )
            events.append(event(account, now))
            continue
        changed = account.gone_since is not None or any(
            getattr(account, name) != fields[name] for name in STATE_FIELDS
        )
        for name, value in fields.items():
            setattr(account, name, value)
        account.last_seen, account.gone_since = now, None
        account.save()
        if changed:
            events.append(event(account, now))
    if complete:
        for account in held.values():
            if account.account_id not in seen and account.gone_since is None:
                account.gone_since = now
                account.running = account.queued = None
                account.save(update_fields=["gone_since", "running", "queued"])
                events.append(event(account, now, gone=True))
    AccountEvent.objects.bulk_create(events)


def event(account, now, gone=False):
    state = {name: getattr(account, name) for name in STATE_FIELDS}
    return AccountEvent(account=account, seen=now, gone=gone, **state)
