"""E-mail addresses as they may stand in an SMTP envelope, checked with :mod:`email.utils`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import formataddr, parseaddr

#: An addr-spec as it may stand in an SMTP envelope: one ``@``, no blanks, quotes,
#: brackets or separators (quoted local parts are refused: nobody alerts one).
_ADDR_SPEC = re.compile(r'[^@\s<>()\[\],;:\\"]+@[^@\s<>()\[\],;:\\"]+')
#: One address or more between commas and semicolons (outside quotes and brackets).
_CHUNK = re.compile(r'(?:"[^"]*"|<[^>]*>|[^,;"<])+')


def _valid_addr_spec(addr: str) -> bool:
    if not _ADDR_SPEC.fullmatch(addr):
        return False
    domain = addr.rpartition("@")[2]
    return not (domain.startswith(".") or domain.endswith(".") or ".." in domain)


def parse_addresses(value: str | Iterable[str]) -> list[str]:
    """E-mail addresses from a string or a list of strings.

    Addresses are separated by commas, semicolons or blanks (``"a@x.org; b@y.org"``,
    ``"a@x.org b@y.org"``); one with a display name (``"Ops Team <ops@x.org>"``) ends at
    the next comma or semicolon. Each is checked with :func:`email.utils.parseaddr`.

    :raises ValueError: naming the first string that is not an address.
    """
    items = [value] if isinstance(value, str) else list(value)
    addresses: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a string")
        if any(ch in item for ch in "\r\n\0"):
            raise ValueError(f"{item!r} holds a line break or NUL")
        for chunk in _CHUNK.findall(item):
            chunk = chunk.strip()
            if not chunk:
                continue
            # "Name <addr>" is one address; otherwise blanks separate bare addresses.
            for part in [chunk] if "<" in chunk or '"' in chunk else chunk.split():
                name, addr = parseaddr(part)
                whole = part.endswith(f"<{addr}>") if "<" in part else part == addr
                if not (addr and whole and _valid_addr_spec(addr)):
                    raise ValueError(f"{part!r} is not an e-mail address")
                addresses.append(formataddr((name, addr)) if name else addr)
    return addresses
