"""Where notifications go: the Apprise URLs of ``PACEKEEPER_NOTIFY_URLS``.

A URL carries its service's credentials (a bot token, a webhook key, a password), so it
never leaves this module: a target is known elsewhere by its ``label`` (its position and
scheme, ``#2 tgram``) and its ``id`` (a digest of the URL, stored in ``notifications.delivered``
so a retry skips the targets that already accepted a row).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from app.config import Settings
from app.notify.messages import Message

log = logging.getLogger(__name__)

# URL parts at least this long are treated as credentials when scrubbing messages: tokens,
# keys and passwords are; the words of a path ("hooks", "notify") are not.
MIN_SECRET_PART = 8


@dataclass(frozen=True)
class Target:
    id: str
    label: str
    url: str = field(repr=False)

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else "?"


def targets_of(settings: Settings) -> list[Target]:
    """The configured targets, in order."""
    out = []
    for n, url in enumerate(settings.notify_url_list(), start=1):
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        scheme = url.split("://", 1)[0].lower() if "://" in url else "?"
        out.append(Target(id=digest, label=f"#{n} {scheme}", url=url))
    return out


def secret_parts(url: str) -> list[str]:
    """What in ``url`` may be a credential: the URL itself, its user and password, and every
    path segment and query value long enough to be a token."""
    parts = [url]
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    candidates = [split.username, split.password]
    candidates += [unquote(s) for s in split.path.split("/")]
    candidates += [value for _, value in parse_qsl(split.query)]
    if "@" not in split.netloc:
        # tgram://<bot id>:<token>/..., discord://<id>/<token>: credentials in the host part
        # (a host name has dots; a token has none).
        candidates += [p for p in [split.netloc, *split.netloc.split(":")] if "." not in p]
    parts += [c for c in candidates if c and len(c) >= MIN_SECRET_PART]
    return parts


class AppriseSender:
    """Sends one message to one target through Apprise (its plugin for the URL's scheme)."""

    def send(self, target: Target, message: Message) -> str | None:
        """None when the target accepted the message, else why not (never the URL)."""
        import apprise

        plugin = apprise.Apprise.instantiate(target.url)
        if plugin is None:
            return f"{target.label}: not a usable Apprise URL"
        try:
            kind = apprise.NotifyType(message.level)
            accepted = plugin.notify(body=message.body, title=message.title, notify_type=kind)
        except Exception as exc:  # a plugin bug must not stop the other targets
            log.warning("notification target %s raised %s", target.label, type(exc).__name__)
            return f"{target.label}: {type(exc).__name__}"
        return None if accepted else f"{target.label}: not accepted"
