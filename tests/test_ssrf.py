"""Tests for hub.ssrf (webhook endpoint SSRF guard)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest

from hub import ssrf
from hub.ssrf import UnresolvableHostError, UnsafeUrlError


def addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def fake_resolver(answers: dict[str, Sequence[str]]) -> ssrf.Resolver:
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


# --- validate_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/hooks", "https://example.com/hooks"),
        ("HTTPS://Example.COM:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://example.com:80/x", "https://example.com:80/x"),
        ("http://münchen.de/x", "http://xn--mnchen-3ya.de/x"),
        ("http://my_host.internal-ish.example/", "http://my_host.internal-ish.example/"),
        ("http://[::1]:8443/p", "http://[::1]:8443/p"),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", "http://[::ffff:7f00:1]/"),
        # IPv4 literal tricks are rewritten so the real destination is visible.
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://0177.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://0x7f000001/", "http://127.0.0.1/"),
        ("http://127.1/", "http://127.0.0.1/"),
        ("http://10.0.0.1./", "http://10.0.0.1/"),
    ],
)
def test_validate_url_normalizes(url: str, expected: str) -> None:
    assert ssrf.validate_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("example.com/hooks", "scheme"),
        ("http:///path", "no host"),
        ("http://", "no host"),
        ("http://user:pass@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://@example.com/", "credentials"),
        ("http://evil.com\\@127.0.0.1/", "credentials"),
        ("http://evil.com\\.example/", "backslash"),
        ("http://example.com/" + "a" * 2000, "longer than 2000"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\r\nHost: x", "whitespace"),
        ("http://example.com:0/", "port"),
        ("http://example.com:99999/", "malformed"),
        ("http://example.com:abc/", "malformed"),
        ("http://[::1/", "malformed"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://%31%32%37.0.0.1/", "invalid host"),
        ("http://a..b/", "invalid host"),
        ("http://1.2.3.4.5/", "IPv4"),
        ("http://256.0.0.1/", "IPv4"),
        ("http://0x100000000/", "IPv4"),
        ("http://08.0.0.1/", "IPv4"),
        ("http://foo.123/", "IPv4"),
    ],
)
def test_validate_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError) as info:
        ssrf.validate_url(url)
    assert reason in info.value.reason


def test_url_of_exactly_max_length_is_accepted() -> None:
    url = "http://example.com/"
    url += "a" * (ssrf.MAX_URL_LENGTH - len(url))
    assert ssrf.validate_url(url) == url


# --- is_forbidden_address -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("fec0::1", "site-local"),
        ("192.0.2.10", "address"),  # documentation range: some non-public reason
        ("198.18.0.1", "address"),  # benchmarking range
        ("255.255.255.255", "address"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("fd00:ec2::254%eth0", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped cloud metadata"),
        ("::ffff:0.0.0.0", "IPv4-mapped unspecified"),
        ("64:ff9b::a00:1", "NAT64-embedded private"),
        ("2002:7f00:1::", "6to4-embedded loopback"),
    ],
)
def test_forbidden_addresses(ip: str, reason: str) -> None:
    got = ssrf.is_forbidden_address(addr(ip), allow_loopback=False)
    assert got is not None
    assert reason in got


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(ip: str) -> None:
    assert ssrf.is_forbidden_address(addr(ip), allow_loopback=False) is None
    assert ssrf.is_forbidden_address(addr(ip), allow_loopback=True) is None


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_loopback_allowed_only_when_asked(ip: str) -> None:
    assert ssrf.is_forbidden_address(addr(ip), allow_loopback=False) is not None
    assert ssrf.is_forbidden_address(addr(ip), allow_loopback=True) is None


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "10.0.0.1", "169.254.169.254", "192.168.0.1"])
def test_allow_loopback_does_not_open_anything_else(ip: str) -> None:
    assert ssrf.is_forbidden_address(addr(ip), allow_loopback=True) is not None


# --- resolve_and_check with an injected resolver ------------------------------------------------


async def test_public_name_resolves_and_is_returned() -> None:
    resolver = fake_resolver({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    got = await ssrf.resolve_and_check("https://hooks.example.com/x", allow_loopback=False, resolver=resolver)
    assert got == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert resolver.calls == [("hooks.example.com", 443)]  # type: ignore[attr-defined]


async def test_port_is_passed_to_resolver() -> None:
    resolver = fake_resolver({"hooks.example.com": ["93.184.215.14"]})
    await ssrf.resolve_and_check("http://hooks.example.com:8080/", allow_loopback=False, resolver=resolver)
    assert resolver.calls == [("hooks.example.com", 8080)]  # type: ignore[attr-defined]


async def test_duplicate_answers_are_collapsed() -> None:
    resolver = fake_resolver({"a.example": ["93.184.215.14", "93.184.215.14"]})
    assert await ssrf.resolve_and_check("http://a.example/", allow_loopback=False, resolver=resolver) == [
        "93.184.215.14"
    ]


async def test_any_forbidden_answer_refuses_the_url() -> None:
    resolver = fake_resolver({"mixed.example": ["93.184.215.14", "10.0.0.5"]})
    with pytest.raises(UnsafeUrlError, match=r"10\.0\.0\.5: private"):
        await ssrf.resolve_and_check("https://mixed.example/", allow_loopback=False, resolver=resolver)


@pytest.mark.parametrize(
    "answer", ["169.254.169.254", "fd00:ec2::254", "127.0.0.1", "::1", "::ffff:192.168.0.1", "100.64.1.1", "0.0.0.0"]
)
async def test_name_resolving_to_forbidden_address_is_refused(answer: str) -> None:
    resolver = fake_resolver({"rebind.example": [answer]})
    with pytest.raises(UnsafeUrlError):
        await ssrf.resolve_and_check("https://rebind.example/", allow_loopback=False, resolver=resolver)


async def test_loopback_name_allowed_with_setting() -> None:
    resolver = fake_resolver({"local.test": ["127.0.0.1", "::1"]})
    got = await ssrf.resolve_and_check("http://local.test:9000/", allow_loopback=True, resolver=resolver)
    assert got == ["127.0.0.1", "::1"]


async def test_unresolvable_host() -> None:
    resolver = fake_resolver({})
    with pytest.raises(UnresolvableHostError, match="could not resolve"):
        await ssrf.resolve_and_check("https://nowhere.example/", allow_loopback=False, resolver=resolver)


async def test_empty_answer_is_unresolvable() -> None:
    resolver = fake_resolver({"empty.example": []})
    with pytest.raises(UnresolvableHostError, match="no addresses"):
        await ssrf.resolve_and_check("https://empty.example/", allow_loopback=False, resolver=resolver)


async def test_garbage_answer_is_refused() -> None:
    resolver = fake_resolver({"odd.example": ["not-an-ip"]})
    with pytest.raises(UnsafeUrlError, match="invalid address"):
        await ssrf.resolve_and_check("https://odd.example/", allow_loopback=False, resolver=resolver)


async def test_invalid_url_is_refused_before_resolving() -> None:
    resolver = fake_resolver({"example.com": ["93.184.215.14"]})
    with pytest.raises(UnsafeUrlError, match="scheme"):
        await ssrf.resolve_and_check("ftp://example.com/", allow_loopback=False, resolver=resolver)
    assert resolver.calls == []  # type: ignore[attr-defined]


async def test_ip_literal_is_checked_without_resolver() -> None:
    resolver = fake_resolver({})
    got = await ssrf.resolve_and_check("https://93.184.215.14/", allow_loopback=False, resolver=resolver)
    assert got == ["93.184.215.14"]
    assert resolver.calls == []  # type: ignore[attr-defined]


# --- the real resolver (numeric hosts and localhost only: no network) ---------------------------

LITERAL_TRICKS = [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://localhost/",
    "http://LOCALHOST:8080/",
]


@pytest.mark.parametrize("url", LITERAL_TRICKS)
async def test_loopback_tricks_refused_with_real_resolver(url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="loopback"):
        await ssrf.resolve_and_check(url, allow_loopback=False)


@pytest.mark.parametrize("url", LITERAL_TRICKS)
async def test_loopback_tricks_allowed_with_setting(url: str) -> None:
    got = await ssrf.resolve_and_check(url, allow_loopback=True)
    assert got
    assert all(addr(a).is_loopback or addr(a) == addr("::ffff:127.0.0.1") for a in got)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "::ffff:127.0.0.1", "localhost"])
async def test_default_resolver_normalises_numeric_hosts(host: str) -> None:
    # Belt and braces: even if a numeric host reached getaddrinfo, it lands on loopback, which the
    # address check refuses.
    answers = await ssrf.default_resolver(host, 80)
    assert answers
    for answer in answers:
        assert ssrf.is_forbidden_address(addr(answer), allow_loopback=False) is not None


async def test_metadata_literal_refused_with_real_resolver() -> None:
    with pytest.raises(UnsafeUrlError, match="metadata"):
        await ssrf.resolve_and_check("http://169.254.169.254/latest/meta-data/", allow_loopback=True)
    with pytest.raises(UnsafeUrlError, match="metadata"):
        await ssrf.resolve_and_check("http://[::ffff:a9fe:a9fe]/", allow_loopback=True)
    with pytest.raises(UnsafeUrlError, match="metadata"):
        await ssrf.resolve_and_check("http://2852039166/", allow_loopback=True)
