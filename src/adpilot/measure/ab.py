"""A/B analysis of two arms: CTR, CVR and revenue per mille with intervals, tests, and honest warnings.

Input, one file per arm (CSV or Parquet), in either of two forms:

- **event log**: ``user_id, type, value, ts``; ``type`` is one of impression/ad_impression, click/ad_click,
  conversion/purchase (other types are ignored); ``value`` is the revenue of a conversion (optional);
  ``ts`` (optional) lets ``experiment_start`` split a pre-period off for CUPED.
- **per-user table**: ``user_id, impressions, clicks, conversions, revenue`` (the last two optional) and any
  ``pre_<column>`` pre-period covariate (e.g. ``pre_clicks``) for CUPED.

CTR = clicks / impressions, CVR = conversions / clicks, RPM = 1000 x revenue / impressions. Rates get Wilson
intervals; their difference a two-proportion z-test and a Bayesian probability that B beats A (Beta(1, 1) priors,
seeded Monte Carlo); RPM a bootstrap over users (the randomisation unit). CUPED adjusts per-user clicks (or
revenue) with the pre-period covariate and reports the variance it removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from adpilot.errors import InputFileError, UserError, check_scalar
from adpilot.measure.intervals import Interval, bootstrap_interval, wilson

EVENT_TYPES = {"impression": "impressions", "ad_impression": "impressions", "click": "clicks",
               "ad_click": "clicks", "conversion": "conversions", "purchase": "conversions"}
COUNTS = ("impressions", "clicks", "conversions", "revenue")
MIN_CLICKS = 30  # below this per arm, a CTR comparison is noise (and the normal approximation is poor)


def read_arm(path: str | Path, experiment_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """One arm's export as a per-user table with :data:`COUNTS` (and ``pre_*`` columns when available)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"A/B export {path} does not exist")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise InputFileError(f"A/B export {path} cannot be read: {error}") from None
    if "user_id" not in frame.columns:
        raise InputFileError(f"A/B export {path} lacks the column 'user_id'")
    if "type" in frame.columns:
        return _per_user_from_events(frame, path, experiment_start)
    if "impressions" not in frame.columns or "clicks" not in frame.columns:
        raise InputFileError(f"A/B export {path} needs either a 'type' column (event log) or 'impressions' and "
                             "'clicks' columns (per-user table)")
    for column in COUNTS:
        if column not in frame.columns:
            frame[column] = 0.0
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
        if frame[column].isna().any() or (frame[column] < 0).any():
            raise UserError(f"A/B export {path}: `{column}` must be non-negative numbers")
    return frame.groupby("user_id", sort=False).sum(numeric_only=True).reset_index()


def _per_user_from_events(frame: pd.DataFrame, path: Path, start: pd.Timestamp | None) -> pd.DataFrame:
    frame = frame.assign(kind=frame["type"].astype(str).str.lower().map(EVENT_TYPES))
    frame = frame[frame["kind"].notna()]
    value = pd.to_numeric(frame["value"], errors="coerce").fillna(0.0) if "value" in frame.columns else 0.0
    frame = frame.assign(value=value, one=1.0)
    pre = None
    if start is not None:
        if "ts" not in frame.columns:
            raise UserError(f"`experiment_start` needs a 'ts' column in {path}")
        ts = pd.to_datetime(frame["ts"], utc=True, errors="coerce")
        pre, frame = frame[ts < start], frame[ts >= start]
    table = _pivot(frame)
    if pre is not None:
        table = table.join(_pivot(pre).add_prefix("pre_"), how="left").fillna(0.0)
    return table.reset_index()


def _pivot(frame: pd.DataFrame) -> pd.DataFrame:
    counts = frame.pivot_table(index="user_id", columns="kind", values="one", aggfunc="sum", fill_value=0.0)
    table = counts.reindex(columns=["impressions", "clicks", "conversions"], fill_value=0.0)
    revenue = frame[frame["kind"] == "conversions"].groupby("user_id")["value"].sum()
    return table.assign(revenue=revenue.reindex(table.index).fillna(0.0))


@dataclass(frozen=True)
class RateComparison:
    """One rate (CTR or CVR) in both arms, their difference and the evidence about it."""

    metric: str
    a: Interval
    b: Interval
    relative_lift: float
    z: float
    p_value: float
    prob_b_better: float


@dataclass
class ABResult:
    """Everything ``ab analyze`` prints."""

    totals: pd.DataFrame
    rates: list[RateComparison]
    rpm: tuple[Interval, Interval] | None
    cuped: dict | None
    warnings: list[str] = field(default_factory=list)


def two_proportion_z(successes_a: float, trials_a: float, successes_b: float, trials_b: float) -> tuple[float, float]:
    """Pooled two-proportion z statistic of B - A and its two-sided p-value.

    >>> z, p = two_proportion_z(100, 10000, 130, 10000)
    >>> round(z, 3), round(p, 4)
    (1.99, 0.0466)
    """
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if se == 0:
        return 0.0, 1.0
    z = (successes_b / trials_b - successes_a / trials_a) / se
    return float(z), float(2 * stats.norm.sf(abs(z)))


def prob_b_better(successes_a: float, trials_a: float, successes_b: float, trials_b: float,
                  n_draws: int = 200_000, random_state: int = 0) -> float:
    """P(rate_B > rate_A) under independent Beta(1 + s, 1 + n - s) posteriors, by seeded Monte Carlo.

    >>> round(prob_b_better(100, 10000, 130, 10000), 2)
    0.98
    """
    rng = np.random.RandomState(random_state)
    a = rng.beta(1 + successes_a, 1 + trials_a - successes_a, n_draws)
    b = rng.beta(1 + successes_b, 1 + trials_b - successes_b, n_draws)
    return float((b > a).mean())


def sample_size(baseline: float, mde: float, *, relative: bool = True, alpha: float = 0.05,
                power: float = 0.8) -> int:
    """Trials per arm for a two-sided two-proportion test to detect ``baseline`` -> ``baseline + effect``.

    ``mde`` is relative (0.1 = +10%) unless ``relative=False``.

    >>> sample_size(0.10, 0.02, relative=False)
    3841
    """
    check_scalar(baseline, "baseline", gt=0, lt=1)
    check_scalar(mde, "mde", gt=0)
    check_scalar(alpha, "alpha", gt=0, lt=1)
    check_scalar(power, "power", gt=0, lt=1)
    p1 = baseline
    p2 = baseline * (1 + mde) if relative else baseline + mde
    if p2 >= 1:
        raise UserError(f"`mde` {mde} takes the rate to {p2:.3f}, which is not below 1")
    pbar = (p1 + p2) / 2
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    n = (z_a * np.sqrt(2 * pbar * (1 - pbar)) + z_b * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p2 - p1) ** 2
    return int(np.ceil(n))


def detectable_lift(baseline: float, trials: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest relative lift ``trials`` per arm detect at this power (normal approximation)."""
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * np.sqrt(2 * baseline * (1 - baseline) / trials) / baseline)


def _rate(metric: str, num: str, den: str, a: pd.DataFrame, b: pd.DataFrame, seed: int) -> RateComparison | None:
    sa, na, sb, nb = a[num].sum(), a[den].sum(), b[num].sum(), b[den].sum()
    if na == 0 or nb == 0:
        return None
    if sa > na or sb > nb:
        raise UserError(f"{metric}: more {num} than {den} in an arm; check the export")
    z, p = two_proportion_z(sa, na, sb, nb)
    ia, ib = wilson(int(round(sa)), int(round(na))), wilson(int(round(sb)), int(round(nb)))
    lift = ib.estimate / ia.estimate - 1 if ia.estimate > 0 else float("nan")
    return RateComparison(metric, ia, ib, lift, z, p, prob_b_better(sa, na, sb, nb, random_state=seed))


def _rpm(arm: pd.DataFrame, seed: int, n_bootstrap: int) -> Interval:
    revenue, imps = arm["revenue"].to_numpy(float), arm["impressions"].to_numpy(float)
    return bootstrap_interval(lambda idx: 1000 * revenue[idx].sum(axis=1) / imps[idx].sum(axis=1), len(arm),
                              estimate=1000 * revenue.sum() / imps.sum(), n_bootstrap=n_bootstrap,
                              random_state=seed)


def cuped(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict | None:
    """CUPED on per-user ``metric`` with covariate ``pre_<metric>``: adjusted difference, its 95% CI, p-value
    (Welch) and the share of variance removed. None when there is no usable pre-period column."""
    covariate = f"pre_{metric}"
    if covariate not in a.columns or covariate not in b.columns:
        return None
    x = np.r_[a[covariate].to_numpy(float), b[covariate].to_numpy(float)]
    y = np.r_[a[metric].to_numpy(float), b[metric].to_numpy(float)]
    if np.var(x) == 0 or len(a) < 2 or len(b) < 2:
        return None
    theta = np.cov(x, y)[0, 1] / np.var(x, ddof=1)
    adjusted = y - theta * (x - x.mean())
    ya, yb = adjusted[: len(a)], adjusted[len(a):]
    diff = yb.mean() - ya.mean()
    se = np.sqrt(ya.var(ddof=1) / len(ya) + yb.var(ddof=1) / len(yb))
    raw_se = np.sqrt(a[metric].var(ddof=1) / len(a) + b[metric].var(ddof=1) / len(b))
    p = 2 * stats.norm.sf(abs(diff / se)) if se > 0 else 1.0
    return {"metric": f"{metric} per user", "covariate": covariate, "theta": float(theta),
            "difference": Interval(float(diff), float(diff - 1.96 * se), float(diff + 1.96 * se)),
            "p_value": float(p), "variance_reduction": float(1 - (se / raw_se) ** 2) if raw_se > 0 else 0.0}


def analyze(a: pd.DataFrame, b: pd.DataFrame, *, planned_n: int | None = None, seed: int = 0,
            n_bootstrap: int = 2000) -> ABResult:
    """Compare arm B with arm A (per-user tables from :func:`read_arm`)."""
    for name, arm in (("A", a), ("B", b)):
        if arm.empty or arm["impressions"].sum() == 0:
            raise UserError(f"arm {name} has no impressions: there is nothing to compare, so no interval "
                            "or test can be computed")
    totals = pd.DataFrame({name: {"users": len(arm), **{c: float(arm[c].sum()) for c in COUNTS}}
                           for name, arm in (("A", a), ("B", b))}).T
    rates = [r for r in (_rate("CTR", "clicks", "impressions", a, b, seed),
                         _rate("CVR", "conversions", "clicks", a, b, seed)) if r is not None]
    warnings = []
    clicks = totals["clicks"].min()
    if clicks < MIN_CLICKS:
        warnings.append(f"sample too small: an arm has only {int(clicks)} clicks (< {MIN_CLICKS}); "
                        "the CTR comparison is not reliable")
    base = totals.loc["A", "clicks"] / totals.loc["A", "impressions"]
    if 0 < base < 1:
        warnings.append(f"with {int(totals['impressions'].min())} impressions per arm this test detects a CTR "
                        f"lift of about {detectable_lift(base, totals['impressions'].min()):.0%} or more "
                        "(80% power, 5% two-sided)")
    if planned_n is not None:
        check_scalar(planned_n, "planned_n", gt=0)
        seen = totals["impressions"].min()
        if seen < planned_n:
            warnings.append(f"peeking: analysed at {seen / planned_n:.0%} of the planned {planned_n} impressions "
                            "per arm; p-values and intervals are not valid until the planned size is reached")
    if len(rates) < 2:
        warnings.append("CVR not computed: an arm has no clicks")
    rpm = None
    if totals["revenue"].sum() > 0:
        rpm = (_rpm(a, seed, n_bootstrap), _rpm(b, seed + 1, n_bootstrap))
    adjusted = cuped(a, b, "revenue") if "pre_revenue" in a.columns and a["pre_revenue"].sum() > 0 \
        else cuped(a, b, "clicks")
    return ABResult(totals, rates, rpm, adjusted, warnings)
