"""Sending one message to one channel: apprise for its URLs, Django's email for mailto:.

A channel's URL is a secret (a chat token, a webhook's path): nothing here logs it, and
an error says what went wrong with the URL's parts masked (`DeliveryError.reason`).
"""

import logging
from urllib.parse import unquote, urlsplit

import apprise
from django.conf import settings
from django.core.mail import send_mail

from tasks.redaction import redact, remember


class DeliveryError(Exception):
    """A message did not go out; the reason is masked."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# SMTP's password from EMAIL_URL or EMAIL_HOST_PASSWORD: masked in the logs like the rest.
remember([settings.EMAIL_HOST_PASSWORD])


def send(channel, title, body):
    """Sends to every URL of the channel (comma-separated); raises DeliveryError."""
    secrets = sorted(channel.url_secrets(), key=len, reverse=True)
    remember(secrets)
    urls = [url.strip() for url in channel.url.split(",") if url.strip()]
    if not urls:
        raise DeliveryError("the channel has no URL")
    mail = [url for url in urls if url.lower().startswith("mailto:")]
    others = [url for url in urls if url not in mail]
    try:
        if mail:
            send_email(mail, title, body)
        if others:
            send_apprise(others, title, body)
    except DeliveryError as error:
        raise DeliveryError(redact(error.reason, secrets)) from None
    except Exception as error:  # SMTP and socket errors: said, never raised further
        raise DeliveryError(redact(f"{type(error).__name__}: {error}", secrets)) from None


def email_addresses(url):
    """mailto:a@example.com,b@example.com or mailto://a@example.com."""
    rest = url.split(":", 1)[1].lstrip("/")
    return [unquote(a).strip() for a in urlsplit("x:" + rest).path.split(",") if a.strip()]


def send_email(urls, title, body):
    recipients = [address for url in urls for address in email_addresses(url)]
    if not recipients:
        raise DeliveryError("mailto: without an address")
    send_mail(title, body, settings.DEFAULT_FROM_EMAIL, recipients)


def send_apprise(urls, title, body):
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise DeliveryError(f"apprise does not know this URL ({urlsplit(url).scheme}://…)")
    # apprise says why a notification failed in its log only: catch it for the error.
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as said:
        sent = notifier.notify(title=title, body=body)
    if not sent:
        reason = " ".join(said.getvalue().split())[:500]
        raise DeliveryError(reason or "apprise could not deliver the message")
