"""Privacy at the door: keyed pseudonyms for user ids and masking of personal data in free text.

The same patterns run in DuckDB (bulk ingest) and in Python (single records, e.g. a request reaching the
server), so a user id or a phone number is treated identically on both paths.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from collections.abc import Sequence

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
PSEUDONYM_MACRO = "adpilot_pseudonym"


def pseudonymise(user_id: str, secret: str) -> str:
    """The stored id of a raw user id: HMAC-SHA256 keyed by ``secret``, first 128 bits in hex.

    >>> pseudonymise("alice", "k" * 16) == pseudonymise("alice", "k" * 16) != pseudonymise("bob", "k" * 16)
    True
    """
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def json_member(name: str) -> str:
    """Regex of the JSON member ``"name": value`` (group 1: name and colon; group 2: the value, even cut short).

    Python's ``re`` and DuckDB's RE2 read it alike, so :func:`hide_json_ids` and :func:`hide_json_ids_sql` agree.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"`name` must be a plain field name, got {name!r}")
    return rf'("{name}"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}}\s\]]+)'


def _json_scalar(value: str) -> str | None:
    """The text of a JSON scalar as ingest reads it (strings unescaped); a cut-off string loses its quote."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value.strip('"')
    if parsed is None or isinstance(parsed, dict | list):
        return None
    return parsed if isinstance(parsed, str) else json.dumps(parsed)


def hide_json_ids(text: str, names: Sequence[str], secret: str) -> str:
    """``text`` (a JSON line, maybe invalid or cut short) with the first ``"name": value`` of each name replaced by
    the value's pseudonym, so a quarantined line stays readable and findable by stored id without the raw id.

    >>> hide_json_ids('{"user_id": "alice", "ts": 1}', ["user_id"], "k" * 16) == (
    ...     '{"user_id": "' + pseudonymise("alice", "k" * 16) + '", "ts": 1}')
    True
    """
    for name in names:
        def swap(match: re.Match[str]) -> str:
            raw_id = _json_scalar(match.group(2))
            return match.group(0) if raw_id is None else match.group(1) + json.dumps(pseudonymise(raw_id, secret))

        text = re.sub(json_member(name), swap, text, count=1)
    return text


def hide_json_ids_sql(expr: str, name: str, pseudonym: str = PSEUDONYM_MACRO) -> str:
    """The DuckDB expression doing :func:`hide_json_ids` for one name (``pseudonym``: the installed macro)."""
    pattern = json_member(name)
    value = f"regexp_extract({expr}, '{pattern}', 2)"
    raw_id = (f"CASE WHEN json_valid({value}) THEN (CASE WHEN json_type({value}) NOT IN ('OBJECT', 'ARRAY') "
              f"THEN json_extract_string({value}, '$') END) ELSE trim({value}, '\"') END")
    return f"coalesce(regexp_replace({expr}, '{pattern}', '\\1' || to_json({pseudonym}({raw_id}))), {expr})"


def hide_csv_ids(text: str, positions: Sequence[int], delimiter: str, secret: str) -> str:
    """``text`` (one CSV record, maybe malformed or cut short) with the fields at ``positions`` pseudonymised.

    >>> hide_csv_ids("bob,2026-03-01,click", [0], ",", "k" * 16) == pseudonymise("bob", "k" * 16) + ",2026-03-01,click"
    True
    """
    try:
        fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    except csv.Error:  # e.g. a NUL byte: no field can be located, so no field is shown
        return "[unreadable record: not shown, it may hold a raw user id]"
    hidden = [i for i in positions if i < len(fields) and fields[i]]
    if not hidden:
        return text
    for i in hidden:
        fields[i] = pseudonymise(fields[i], secret)
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    return out.getvalue()


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
        f"CREATE OR REPLACE TEMP MACRO {PSEUDONYM_MACRO}(m) AS "
        f"left(sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(CAST(m AS VARCHAR))))), "
        f"{PSEUDONYM_HEX})"
    )
    return PSEUDONYM_MACRO
