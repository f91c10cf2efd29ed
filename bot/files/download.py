"""Fetching a file from a chat platform's file host with the bot's token: only from the
platform's own hosts (redirects followed only within them), and never more than a limit
(the body is read in chunks and the download stops past it, so nothing unbounded is held).

Adapters call `fetch_limited` from their surfaces with their token and hosts; the rules
live here so that both platforms follow the same ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from urllib.parse import urljoin, urlsplit

import aiohttp

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_MAX_REDIRECTS = 5


class DownloadError(Exception):
    """A file could not be fetched; the subclass says why."""


class FileTooLarge(DownloadError):
    """The file is larger than the limit (declared, or counted while reading)."""


class HostRefused(DownloadError):
    """The URL (or a redirect) points outside the platform's own file hosts."""


class DownloadFailed(DownloadError):
    """The host answered with an error, or the connection failed."""


def host_allowed(url: str, hosts: Collection[str]) -> bool:
    """Whether `url` is https (or plain http on loopback, for tests) on one of `hosts`:
    an exact host, or a subdomain of a host written with a leading dot (".slack.com")."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or parts.username or parts.password:
        return False
    if parts.scheme != "https" and not (parts.scheme == "http" and host in ("127.0.0.1", "localhost")):
        return False
    for allowed in hosts:
        allowed = allowed.lower()
        if allowed.startswith(".") and (host.endswith(allowed) or host == allowed[1:]):
            return True
        if host == allowed.split(":")[0] and (":" not in allowed or f"{host}:{parts.port}" == allowed):
            return True
    return False


def with_api_host(hosts: tuple[str, ...], api_url: str | None, official_api_host: str) -> tuple[str, ...]:
    """The platform's file hosts, plus the host of a configured API URL that is not the
    platform's own (a proxy or a compatible server: it serves that workspace's files too)."""
    api_host = urlsplit(api_url or "").netloc.lower()
    return hosts if api_host in ("", official_api_host) else (*hosts, api_host)


async def fetch_limited(
    session: aiohttp.ClientSession,
    url: str,
    *,
    hosts: Collection[str],
    limit: int,
    headers: dict[str, str] | None = None,
    html_means_refused: bool = False,
) -> bytes:
    """The body at `url`, at most `limit` bytes; `headers` (the token) go only to `hosts`.
    With `html_means_refused`, an HTML answer is the host's sign-in page, not the file."""
    for _ in range(_MAX_REDIRECTS + 1):
        if not host_allowed(url, hosts):
            log.warning("file download refused: %s is not a file host of the platform", urlsplit(url).hostname)
            raise HostRefused(url)
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise DownloadFailed(f"status {response.status}")
                if html_means_refused and response.content_type == "text/html":
                    raise DownloadFailed("a sign-in page instead of the file (token or scope refused)")
                declared = response.content_length
                if declared is not None and declared > limit:
                    raise FileTooLarge(f"{declared} bytes declared")
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise FileTooLarge(f"more than {limit} bytes")  # leaving the block drops the connection
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadFailed(type(exc).__name__) from None
    raise DownloadFailed("too many redirects")
