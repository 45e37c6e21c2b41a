"""Privacy at the door: keyed pseudonyms for user ids and masking of personal data in free text.

The same patterns run in DuckDB (bulk ingest) and in Python (single records, e.g. a request reaching the
server), so a user id or a phone number is treated identically on both paths.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import duckdb

# (pattern, replacement); groups 1 and last are the characters around a number, kept as they were.
# Boundary groups consume one character, so patterns that need them run twice (see ``_PASSES``).
MASKS: tuple[tuple[str, str], ...] = (
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[email]"),
    (r"(^|[^0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
     r"($|[^0-9A-Za-z])", r"\1[id]\2"),
    (r"(^|[^0-9+])(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}($|[^0-9])", r"\1[phone]\2"),
    (r"(^|[^0-9])\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{2,4}\)?){3,5}($|[^0-9])", r"\1[phone]\2"),
)
_PASSES = 2
PSEUDONYM_HEX = 32


def pseudonymise(user_id: str, secret: str) -> str:
    """The stored id of a raw user id: HMAC-SHA256 keyed by ``secret``, first 128 bits in hex.

    >>> pseudonymise("alice", "k" * 16) == pseudonymise("alice", "k" * 16) != pseudonymise("bob", "k" * 16)
    True
    """
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def mask_pii(text: str) -> str:
    """Replace e-mail addresses, Chinese ID-card numbers and phone numbers in ``text``.

    >>> mask_pii("call 13800138000 or mail li@shop.cn")
    'call [phone] or mail [email]'
    """
    for pattern, replacement in MASKS:
        for _ in range(_PASSES if "\\1" in replacement else 1):
            text = re.sub(pattern, replacement.replace("\\1", r"\g<1>").replace("\\2", r"\g<2>"), text)
    return text


def mask_sql(expr: str) -> str:
    """The DuckDB expression masking ``expr`` exactly as :func:`mask_pii` does."""
    for pattern, replacement in MASKS:
        for _ in range(_PASSES if "\\1" in replacement else 1):
            expr = f"regexp_replace({expr}, '{pattern}', '{replacement}', 'g')"
    return expr


def install_pseudonym_macro(con: duckdb.DuckDBPyConnection, secret: str) -> str:
    """Create a temporary SQL macro computing :func:`pseudonymise` in bulk; returns its name.

    HMAC is spelled out with two SHA-256 calls over the padded key, so the secret only lives in this
    connection's memory (the macro is temporary, never written to the database file).
    """
    key = secret.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = bytes(b ^ 0x36 for b in key).hex()
    outer = bytes(b ^ 0x5C for b in key).hex()
    con.execute(
        "CREATE OR REPLACE TEMP MACRO adpilot_pseudonym(m) AS "
        f"left(sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(CAST(m AS VARCHAR))))), "
        f"{PSEUDONYM_HEX})"
    )
    return "adpilot_pseudonym"
