from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

import pytest

from tests.tools.conftest import LoopbackServer
from tools.net import (
    FetchFailed,
    OutboundBlocked,
    Resolver,
    ResponseTooLarge,
    fetch_public,
    is_public_address,
    pin_url,
)

LOCAL = frozenset({"127.0.0.1"})


def resolver_for(table: dict[str, list[str]]) -> Resolver:
    """A resolver that knows only `table` (a stand-in for DNS)."""

    async def resolve(host: str) -> Sequence[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fe80::1%1",
        "ff02::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::101:101"]
)
def test_public_addresses(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.5:8080/x",
        "http://172.16.3.4/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "https://[fe80::1]/",
    ],
)
async def test_private_literals_are_blocked(url: str) -> None:
    with pytest.raises(OutboundBlocked, match="not a public address"):
        await fetch_public(url, max_bytes=1000, timeout=2.0)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://a/"])
async def test_only_http_schemes(url: str) -> None:
    with pytest.raises(OutboundBlocked, match="scheme"):
        await fetch_public(url, max_bytes=1000, timeout=2.0)


NUMERIC_HOSTS = [
    "http://0177.0.0.1/",  # octal
    "http://2130706433/",  # one decimal number
    "http://0x7f.1/",  # hex and a short form
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.1/",
    "http://127.0.0.1./",
    "http://0/",
    "https://0300.0250.0.1/",  # octal 192.168.0.1
]


@pytest.mark.parametrize("url", NUMERIC_HOSTS)
async def test_numeric_hosts_in_other_forms_are_refused(url: str) -> None:
    # Whatever DNS would answer (here: a public address), such a host is never looked up.
    async def public(host: str) -> Sequence[str]:
        return ["93.184.215.14"]

    with pytest.raises(OutboundBlocked, match=r"non-standard form|not a valid URL"):
        await fetch_public(url, max_bytes=1000, timeout=2.0, resolver=public)


async def test_a_redirect_to_an_octal_host_is_refused(loopback: LoopbackServer) -> None:
    target = urllib.parse.quote("http://0177.0.0.1/", safe="")
    with pytest.raises(FetchFailed, match="Invalid IPv4 address"):
        await fetch_public(
            f"http://127.0.0.1:{loopback.port}/redirect?to={target}",
            max_bytes=1000,
            timeout=2.0,
            allow_hosts=LOCAL,
        )


async def test_hostname_resolving_to_loopback_is_blocked(loopback: LoopbackServer) -> None:
    resolve = resolver_for({"innocent.example": ["127.0.0.1"]})
    with pytest.raises(OutboundBlocked, match=r"innocent\.example resolves to 127\.0\.0\.1"):
        await fetch_public(
            f"http://innocent.example:{loopback.port}/host",
            max_bytes=1000,
            timeout=2.0,
            resolver=resolve,
        )
    assert loopback.hits["/host"] == 0


async def test_one_private_answer_blocks_the_host() -> None:
    resolve = resolver_for({"mixed.example": ["93.184.215.14", "10.0.0.1"]})
    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.1"):
        await pin_url("https://mixed.example/", resolver=resolve)


async def test_connects_to_the_checked_address_with_the_original_host(
    loopback: LoopbackServer,
) -> None:
    # "pinned.test" exists only in this resolver: the request can only succeed
    # by connecting to the address the guard checked.
    resolve = resolver_for({"pinned.test": ["127.0.0.1"]})
    body = await fetch_public(
        f"http://pinned.test:{loopback.port}/host",
        max_bytes=1000,
        timeout=5.0,
        resolver=resolve,
        allow_hosts={"pinned.test"},
    )
    assert body == f"pinned.test:{loopback.port}".encode()


async def test_pinned_https_url_keeps_the_name_for_sni() -> None:
    resolve = resolver_for({"public.example": ["93.184.215.14"]})
    pinned = await pin_url("https://public.example/a?b=1", resolver=resolve)
    assert str(pinned.connect_url) == "https://93.184.215.14/a?b=1"
    assert pinned.host_header == "public.example"
    assert pinned.extensions == {"sni_hostname": "public.example"}


async def test_redirect_to_loopback_is_blocked(loopback: LoopbackServer) -> None:
    # The first server is allowed by name and port; the hop it redirects to is not.
    target = f"http://localhost:{loopback.port}/host"
    start = f"{loopback.base}/redirect?to={urllib.parse.quote(target)}"
    before = loopback.hits["/host"]
    with pytest.raises(OutboundBlocked, match="localhost resolves to"):
        await fetch_public(
            start, max_bytes=1000, timeout=5.0, allow_hosts={f"127.0.0.1:{loopback.port}"}
        )
    assert loopback.hits["/redirect"] >= 1
    assert loopback.hits["/host"] == before


async def test_redirects_are_followed_and_counted(loopback: LoopbackServer) -> None:
    loopback.files["final.txt"] = b"arrived"
    final = f"{loopback.base}/bytes/final.txt"
    one = f"{loopback.base}/redirect?to={urllib.parse.quote(final)}"
    two = f"{loopback.base}/redirect?to={urllib.parse.quote(one)}"
    assert await fetch_public(two, max_bytes=100, timeout=5.0, allow_hosts=LOCAL) == b"arrived"
    with pytest.raises(OutboundBlocked, match="redirects"):
        await fetch_public(two, max_bytes=100, timeout=5.0, allow_hosts=LOCAL, max_redirects=1)


async def test_oversized_bodies_are_cut_off(loopback: LoopbackServer) -> None:
    loopback.files["big.bin"] = b"y" * 5000
    with pytest.raises(ResponseTooLarge, match="4096"):
        await fetch_public(
            f"{loopback.base}/bytes/big.bin", max_bytes=4096, timeout=5.0, allow_hosts=LOCAL
        )
    # Without a Content-Length the stream is read only up to the limit.
    with pytest.raises(ResponseTooLarge):
        await fetch_public(
            f"{loopback.base}/stream/50000000", max_bytes=100_000, timeout=5.0, allow_hosts=LOCAL
        )
    body = await fetch_public(
        f"{loopback.base}/stream/1000", max_bytes=1000, timeout=5.0, allow_hosts=LOCAL
    )
    assert body == b"x" * 1000


async def test_http_errors_and_unreachable_hosts_fail(loopback: LoopbackServer) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        await fetch_public(
            f"{loopback.base}/status/404", max_bytes=100, timeout=5.0, allow_hosts=LOCAL
        )
    # Nothing listens on port 1 of the loopback interface.
    with pytest.raises(FetchFailed):
        await fetch_public("http://127.0.0.1:1/", max_bytes=100, timeout=5.0, allow_private=True)


async def test_allow_private_switches_the_address_check_off(loopback: LoopbackServer) -> None:
    loopback.files["ok.txt"] = b"ok"
    url = f"{loopback.base}/bytes/ok.txt"
    assert await fetch_public(url, max_bytes=10, timeout=5.0, allow_private=True) == b"ok"
