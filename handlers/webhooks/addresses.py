"""Which network addresses a webhook may reach: public ones only, unless the service is told
otherwise (ORDERDESK_WEBHOOK_ALLOW_PRIVATE, for tests and private networks).

A webhook URL is the one place where a caller chooses where the service connects, so it is
where a stranger would aim it at the service's own network: a database on 10.0.0.5, the
cloud's metadata service on 169.254.169.254, an admin page on 127.0.0.1. Every address a
host resolves to is checked, IPv4 and IPv6, including the IPv4 address inside an IPv6 one
(`::ffff:10.0.0.5`, 6to4, Teredo, NAT64), which reaches the IPv4 host it names. The check is
made at registration, and again at every delivery, which then connects to the very address
it checked (handlers/webhooks/posting.py): a name that resolves to a public address when
registered and to a private one later (DNS rebinding) reaches nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Address = IPv4Address | IPv6Address

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""The addresses (as text) a host name resolves to, for a port."""

_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
_CGNAT = IPv4Network("100.64.0.0/10")


class UnreachableAddress(Exception):
    """A webhook's host may not be reached, or could not be found; the message says why in
    words fit for staff (an attempt's error, a registration's refusal)."""


def literal_address(host: str) -> Address | None:
    """The address `host` is, if it is one (brackets of an IPv6 URL host allowed)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 host an IPv6 address reaches, where it names one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _is_public(address: Address) -> bool:
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, IPv4Address) and address in _CGNAT)
        or not address.is_global
    )


def refusal(address: Address) -> str | None:
    """Why a webhook may not reach `address`; None if it may."""
    inner = _embedded_ipv4(address) if isinstance(address, IPv6Address) else None
    # A mapped address is its IPv4 host on a dual-stack socket, and is judged as that host;
    # the tunnels' own IPv6 prefixes are public, and the host inside must be too.
    mapped = isinstance(address, IPv6Address) and address.ipv4_mapped is not None
    outer_public = mapped or _is_public(address)
    if outer_public and (inner is None or _is_public(inner)):
        return None
    return (
        f"{address} is a private, loopback, link-local or otherwise non-public address, "
        "which webhooks may not reach"
    )


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The system's resolver (getaddrinfo), off the event loop."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(entry[4][0]) for entry in found))


async def checked_addresses(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolve: Resolver = system_resolver,
    timeout: float,  # noqa: ASYNC109
) -> list[Address]:
    """The addresses of `host` a webhook may connect to: all it resolves to, or
    UnreachableAddress if any of them is refused (a name with one private address among
    public ones is refused whole: which one a connection would use is not ours to know).
    """
    literal = literal_address(host)
    if literal is not None:
        found: list[Address] = [literal]
    else:
        try:
            async with asyncio.timeout(timeout):
                names = await resolve(host, port)
        except (OSError, TimeoutError, UnicodeError):
            raise UnreachableAddress(f"the host {host} could not be found") from None
        found = [a for a in (literal_address(name.split("%")[0]) for name in names) if a]
        if not found:
            raise UnreachableAddress(f"the host {host} could not be found")
    if not allow_private:
        for address in found:
            reason = refusal(address)
            if reason is not None:
                raise UnreachableAddress(reason)
    return found
