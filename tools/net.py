"""The outbound request guard: the one way Trellis fetches a URL someone else chose.

User-supplied image URLs and webhook targets (`post_json_public`) go through here. A URL is
only fetched over http(s), after its host resolves to public addresses only;
the connection then goes to the very address that was checked (the host name
travels in the Host header and TLS SNI), so a DNS answer cannot change between
check and use. Every redirect hop is checked again, bodies are capped while
streaming, and the whole exchange has one deadline.

Exception tree:

    OutboundError
     ├── OutboundBlocked        the destination is refused by policy; never retry
     └── FetchFailed            network error, timeout, or an HTTP error status
          └── ResponseTooLarge  the body exceeded max_bytes
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

__all__ = [
    "FetchFailed",
    "OutboundBlocked",
    "OutboundError",
    "PinnedUrl",
    "PublicFetcher",
    "Resolver",
    "ResponseTooLarge",
    "UrlFetcher",
    "fetch_public",
    "is_public_address",
    "pin_url",
    "post_json_public",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""Maps a host name to the IP addresses it resolves to."""

USER_AGENT = "Trellis/0.1 (+outbound guard)"


class OutboundError(Exception):
    """Base of every error raised by the outbound guard."""


class OutboundBlocked(OutboundError):
    """Raised when a URL or a redirect points somewhere Trellis must not connect to."""


class FetchFailed(OutboundError):
    """Raised when an allowed destination could not deliver: network, timeout, status."""


class ResponseTooLarge(FetchFailed):
    """Raised when a response body exceeds the caller's `max_bytes`."""


class UrlFetcher(Protocol):
    """Fetches the body of a URL; `PublicFetcher` is the guarded implementation."""

    async def __call__(self, url: str) -> bytes:
        """Return the body of `url`."""
        ...


# Checked on top of `is_global`, which misses some of these on older Pythons
# and treats the IPv4-compatible ::/96 block as global.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, including cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",  # unspecified, loopback and IPv4-compatible addresses
        "64:ff9b:1::/48",  # local-use NAT64
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public_address(address: str | IPAddress) -> bool:
    """True when `address` is a globally routable unicast address Trellis may connect to."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
    if any(ip.version == net.version and ip in net for net in _BLOCKED_NETWORKS):
        return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class PinnedUrl:
    """A checked URL and the exact address to connect to for it."""

    url: httpx.URL
    """The URL as given, with its host name."""
    address: IPAddress
    """The checked address the connection must go to."""

    @property
    def connect_url(self) -> httpx.URL:
        """`url` with its host replaced by `address`."""
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        """Value for the Host header: the original host (and non-default port)."""
        return self.url.netloc.decode("ascii")

    @property
    def extensions(self) -> dict[str, str]:
        """httpx request extensions: TLS SNI (and certificate check) on the host name."""
        if self.url.scheme == "https" and not _is_ip_literal(self.url.raw_host):
            return {"sni_hostname": self.url.raw_host.decode("ascii")}
        return {}


# What inet_aton reads as an IPv4 address besides a dotted quad: one to four parts, each
# decimal, octal (leading 0) or hex (0x), such as 2130706433, 0177.0.0.1 or 0x7f.1. A
# system resolver may turn such a "host name" into an address; Trellis refuses the lot.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


def _is_ip_literal(raw_host: bytes) -> bool:
    try:
        ipaddress.ip_address(raw_host.decode("ascii"))
    except ValueError:
        return False
    return True


async def _system_resolver(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _allowed_by_name(url: httpx.URL, allow_hosts: Collection[str]) -> bool:
    if not allow_hosts:
        return False
    host = url.raw_host.decode("ascii").lower()
    port = url.port or (443 if url.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    names = {host, shown, f"{shown}:{port}"}
    return any(entry.lower() in names for entry in allow_hosts)


async def pin_url(
    url: str | httpx.URL,
    *,
    allow_private: bool = False,
    allow_hosts: Collection[str] = (),
    resolver: Resolver | None = None,
) -> PinnedUrl:
    """Check `url` against the outbound policy and choose the address to connect to."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundBlocked(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise OutboundBlocked(f"scheme {parsed.scheme!r} is not allowed; use http or https")
    if not parsed.raw_host:
        raise OutboundBlocked("URL has no host")
    host = parsed.raw_host.decode("ascii")
    try:
        candidates: Sequence[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        if _NUMERIC_HOST.match(host):
            raise OutboundBlocked(
                f"host {host!r} is a numeric address in a non-standard form; "
                "only dotted-quad IPv4 and bracketed IPv6 addresses are accepted"
            ) from None
        try:
            candidates = await (resolver or _system_resolver)(host)
        except (OSError, UnicodeError) as exc:
            raise FetchFailed(f"cannot resolve {host}: {exc}") from exc
    addresses = []
    for candidate in candidates:
        try:
            addresses.append(ipaddress.ip_address(candidate))
        except ValueError as exc:
            raise FetchFailed(f"resolver returned {candidate!r} for {host}") from exc
    if not addresses:
        raise FetchFailed(f"{host} has no addresses")
    if not (allow_private or _allowed_by_name(parsed, allow_hosts)):
        # One non-public answer blocks the host: connecting to "the other one"
        # would let a hostile DNS zone pick which check we run.
        for address in addresses:
            if not is_public_address(address):
                raise OutboundBlocked(
                    f"{host} resolves to {address}, which is not a public address"
                )
    return PinnedUrl(url=parsed, address=addresses[0])


def _pinning_client(timeout: float) -> httpx.AsyncClient:
    """A client that goes where it is told: no redirects, no environment proxy."""
    return httpx.AsyncClient(
        trust_env=False,  # an environment proxy would defeat address pinning
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
    )


async def fetch_public(
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - one deadline for all hops, also httpx's per-read bound
    max_redirects: int = 3,
    allow_private: bool = False,
    allow_hosts: Collection[str] = (),
    resolver: Resolver | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """GET `url` under the outbound policy, re-checking each redirect; body <= max_bytes."""
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        # httpx refuses some numeric hosts itself, e.g. the octal 0177.0.0.1.
        raise OutboundBlocked(f"not a valid URL: {exc}") from exc
    try:
        async with (
            asyncio.timeout(timeout),
            _pinning_client(timeout) as client,
        ):
            for _ in range(max_redirects + 1):
                pinned = await pin_url(
                    current, allow_private=allow_private, allow_hosts=allow_hosts, resolver=resolver
                )
                request = client.build_request(
                    "GET",
                    pinned.connect_url,
                    headers={**(headers or {}), "Host": pinned.host_header},
                    extensions=pinned.extensions,
                )
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        current = current.join(response.headers["location"])
                        continue
                    if not response.is_success:
                        raise FetchFailed(f"{current} answered HTTP {response.status_code}")
                    return await _read_capped(response, max_bytes)
                finally:
                    await response.aclose()
            raise OutboundBlocked(f"more than {max_redirects} redirects fetching {url}")
    except TimeoutError as exc:
        raise FetchFailed(f"fetching {url} took longer than {timeout} s") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"fetching {url} failed: {exc}") from exc


async def post_json_public(
    url: str,
    body: bytes,
    *,
    timeout: float,  # noqa: ASYNC109 - one deadline for the whole exchange
    allow_private: bool = False,
    allow_hosts: Collection[str] = (),
    resolver: Resolver | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """POST a JSON `body` to `url` under the outbound policy; returns the 2xx status.

    Redirects are not followed (a webhook receiver answers where it was asked),
    so a 3xx is a failure like any other non-2xx status.
    """
    try:
        async with (
            asyncio.timeout(timeout),
            _pinning_client(timeout) as client,
        ):
            pinned = await pin_url(
                url, allow_private=allow_private, allow_hosts=allow_hosts, resolver=resolver
            )
            request = client.build_request(
                "POST",
                pinned.connect_url,
                content=body,
                headers={
                    **(headers or {}),
                    "Content-Type": "application/json",
                    "Host": pinned.host_header,
                },
                extensions=pinned.extensions,
            )
            response = await client.send(request)
            if not response.is_success:
                raise FetchFailed(f"{url} answered HTTP {response.status_code}")
            return response.status_code
    except TimeoutError as exc:
        raise FetchFailed(f"posting to {url} took longer than {timeout} s") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"posting to {url} failed: {exc}") from exc


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"response declares {declared} bytes, limit is {max_bytes}")
    body = bytearray()
    # aiter_bytes yields decoded content, so the cap also bounds a compression bomb.
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"response body exceeds the limit of {max_bytes} bytes")
    return bytes(body)


@dataclass(frozen=True)
class PublicFetcher:
    """`UrlFetcher` that fetches through `fetch_public` with fixed limits."""

    max_bytes: int
    timeout: float
    max_redirects: int = 3
    allow_private: bool = False
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    resolver: Resolver | None = None

    async def __call__(self, url: str) -> bytes:
        """Fetch `url` under the outbound policy."""
        return await fetch_public(
            url,
            max_bytes=self.max_bytes,
            timeout=self.timeout,
            max_redirects=self.max_redirects,
            allow_private=self.allow_private,
            allow_hosts=self.allow_hosts,
            resolver=self.resolver,
        )
