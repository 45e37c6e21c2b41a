"""Property tests of the validators, the masks and the pseudonyms: SQL and Python agree with the schema."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adpilot.schema import Event
from adpilot.store.fields import specs_from_model
from adpilot.store.kinds import infer_kind
from adpilot.store.privacy import install_pseudonym_macro, mask_pii, mask_sql, pseudonymise
from adpilot.store.validate import input_kind, validation_sql

CON = duckdb.connect()
CON.execute("SET TimeZone = 'UTC'")
SPECS = specs_from_model(Event)


def _validate(columns: dict[str, pa.Array]) -> list[tuple]:
    n = len(next(iter(columns.values())))
    base = {"user_id": pa.array(["u"] * n), "ts": pa.array(["2026-03-01 10:00:00"] * n), "type": pa.array(["click"] * n)}
    table = pa.table({**base, **columns, "_row": pa.array(range(n), pa.int64())})
    inputs = {c: (f'"{c}"', input_kind(table.schema.field(c).type)) for c in table.column_names if c != "_row"}
    return _run(table, inputs)


def _run(table: pa.Table, inputs: dict) -> list[tuple]:
    CON.register("batch", table)
    try:
        return CON.execute(f"SELECT * FROM ({validation_sql(SPECS, inputs, 'batch')}) ORDER BY _row").fetchall()
    finally:
        CON.unregister("batch")


def _pydantic_accepts(**fields: object) -> bool:
    try:
        Event(user_id="u", ts=datetime(2026, 3, 1, tzinfo=UTC), type="click", **fields)
        return True
    except ValidationError:
        return False


NUMBERS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.integers(-10, 10).map(float)


@settings(max_examples=60, deadline=None)
@given(st.lists(NUMBERS, min_size=1, max_size=20), st.booleans())
def test_price_and_rating_verdicts_match_the_pydantic_record(values, as_text):
    """SQL accepts a price or a rating exactly when the pydantic :class:`Event` accepts it."""
    arrays = {name: pa.array([repr(v) if as_text else v for v in values]) for name in ("price", "rating")}
    reason = [row[-2] for row in _validate(arrays)]
    for value, why in zip(values, reason, strict=True):
        expected = _pydantic_accepts(price=value) and _pydantic_accepts(rating=value)
        assert (why is None) == expected, (value, why)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 4_000_000_000), st.booleans())
def test_epoch_seconds_and_milliseconds_parse_to_the_same_instant(seconds, millis):
    text = str(seconds * 1000 if millis and seconds * 1000 >= 10**11 else seconds)
    rows = _validate({"ts": pa.array([text])})
    expected = datetime.fromtimestamp(int(text) / (1000 if int(text) >= 10**11 else 1), UTC)
    assert rows[0][4] == expected


def test_iso_timestamps_with_offsets_and_naive_ones_are_utc():
    rows = _validate({"ts": pa.array(["2026-03-01T10:00:00+08:00", "2026-03-01 02:00:00", "soon"])})
    assert rows[0][4] == rows[1][4] == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert rows[2][-2] == "`ts` is not a timestamp: 'soon'"


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
PHONE = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
ID_CARD = st.from_regex(r"[1-9][0-9]{5}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9])[0-9]{3}[0-9X]", fullmatch=True)
EMAIL = st.from_regex(r"[a-z0-9._]{1,12}@[a-z0-9]{1,10}\.(com|cn|org)", fullmatch=True)
AROUND = st.text(alphabet=" 买家，。:\n", max_size=10)  # people separate numbers from words and each other


@settings(max_examples=80, deadline=None)
@given(TEXT)
def test_sql_and_python_masks_agree(text):
    assert CON.execute(f"SELECT {mask_sql('$1')}", [text]).fetchone()[0] == mask_pii(text)


@settings(max_examples=80, deadline=None)
@given(AROUND, st.one_of(PHONE, ID_CARD, EMAIL), AROUND.filter(bool), st.one_of(PHONE, ID_CARD, EMAIL), AROUND)
def test_personal_data_never_survives_masking(a, first, b, second, c):
    masked = mask_pii(a + first + b + second + c)
    assert first not in masked and second not in masked
    assert masked.startswith(a) and masked.endswith(c)


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=16, max_size=80))
def test_sql_pseudonym_is_the_python_hmac(user_id, secret):
    install_pseudonym_macro(CON, secret)
    assert CON.execute("SELECT adpilot_pseudonym($1)", [user_id]).fetchone()[0] == pseudonymise(user_id, secret)


@pytest.mark.parametrize(("columns", "kind"), [
    (["user_id", "ts", "item_id"], "events"),  # ``type`` missing: still recognised, then refused for it
    (["product_id", "title", "price", "category"], "products"),
    (["user_id", "gender", "consent_ads"], "users"),
    (["campaign_id", "advertiser_id", "name", "total_budget", "daily_budget"], "campaigns"),
])
def test_kind_is_inferred_from_columns(columns, kind):
    assert infer_kind(columns).name == kind


def test_specs_follow_the_schema():
    specs = {s.name: s for s in SPECS}
    assert specs["rating"].le == 5 and specs["query"].max_len == 1000 and specs["user_id"].required
    assert not math.isnan(specs["price"].ge)


@settings(max_examples=40, deadline=None)
@given(st.lists(NUMBERS, min_size=1, max_size=20), st.lists(st.sampled_from(["click", "teleport", "", " CLICK "]),
                                                             min_size=20, max_size=20))
def test_valid_and_rejected_rows_split_the_batch_as_the_reasons_do(values, types):
    """``rows='valid'`` (one boolean test, no reasons built) and ``rows='rejected'`` partition the rows exactly as
    the reasons of ``rows='all'`` do, with the same values and reasons."""
    n = len(values)
    table = pa.table({"user_id": ["u"] * n, "ts": ["2026-03-01 10:00:00"] * n, "type": types[:n],
                      "price": values, "_row": pa.array(range(n), pa.int64())})
    inputs = {c: (f'"{c}"', input_kind(table.schema.field(c).type)) for c in table.column_names if c != "_row"}
    con = CON.cursor()  # its own connection: the shared one may hold another test's unfinished result
    con.register("batch", table)
    runs = {rows: con.execute(f"SELECT * FROM ({validation_sql(SPECS, inputs, 'batch', rows=rows)}) ORDER BY _row")
            .fetchall() for rows in ("all", "valid", "rejected")}
    reason = -2
    assert repr(runs["valid"]) == repr([r for r in runs["all"] if r[reason] is None])  # repr: NaN equals NaN
    assert repr(runs["rejected"]) == repr([r for r in runs["all"] if r[reason] is not None])
