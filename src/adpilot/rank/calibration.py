"""Post-hoc calibration fitted on validation predictions; numpy-only to apply, so the scorer carries it.

``platt`` fits ``sigmoid(a * logit(p) + b)`` with ``a > 0`` (temperature scaling plus a shift; keeps the
ranking, so AUC is unchanged; Platt's smoothed targets keep it sane with a handful of positives); ``isotonic`` fits a monotone step function (more flexible, can create ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from adpilot.errors import UserError

METHODS = ("platt", "isotonic", "none")


LOGIT_MIN = float(np.log(1e-7) - np.log1p(-1e-7))
"""The logit of the smallest probability :func:`_logit` keeps (it clips to [1e-7, 1 - 1e-7])."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration map; ``apply`` works on probabilities of any shape."""

    method: str = "none"
    params: tuple[float, ...] = ()
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()

    def apply(self, p: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            a, b = self.params
            return expit(a * _logit(p) + b)
        if self.method == "isotonic":
            return np.interp(p, self.xs, self.ys)
        return np.asarray(p, np.float64)

    def apply_logit(self, z: np.ndarray) -> np.ndarray:
        """:meth:`apply` to ``sigmoid(z)`` without the round trip through the probability (serving path)."""
        z = np.asarray(z, np.float64)
        if self.method == "platt":
            a, b = self.params
            return expit(a * np.clip(z, LOGIT_MIN, -LOGIT_MIN) + b)
        return self.apply(expit(z))

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "params": list(self.params), "xs": list(self.xs), "ys": list(self.ys)}

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        return cls(d["method"], tuple(d["params"]), tuple(d["xs"]), tuple(d["ys"]))


def cvr_tower(raw: np.ndarray) -> np.ndarray:
    """ESMM's pCVR (the CVR tower, P(conversion | click)) from its raw heads ``[n, 2]`` = (pCTR, pCTCVR)."""
    return np.clip(raw[:, 1] / np.maximum(raw[:, 0], 1e-300), 0.0, 1.0)


def calibrate_heads(calibrators: list[Calibrator], raw: np.ndarray) -> np.ndarray:
    """Calibrated heads from raw ones: ``[n, 1]`` (p) or, for ESMM, ``[n, 2]`` = (pCTR, pCTR * pCVR).

    ESMM's calibrators are per tower (CTR, then CVR): pCTCVR is the product of the two calibrated towers, so
    pCTCVR / pCTR is exactly the calibrated pCVR the scorer serves (two separately calibrated heads would not
    divide into a probability)."""
    p = calibrators[0].apply(raw[:, 0])
    if raw.shape[1] == 1:
        return p[:, None]
    return np.stack([p, p * calibrators[1].apply(cvr_tower(raw))], axis=1)


def fit_tower_calibrators(y: np.ndarray, raw: np.ndarray, method: str) -> list[Calibrator]:
    """One calibrator per tower, fitted on validation labels ``y`` and raw heads ``raw`` (as
    :func:`calibrate_heads` takes them): the CTR tower on every row; ESMM's CVR tower against the conversions
    of the clicked rows only, the rows where P(conversion | click) is observed.

    This makes pCVR P(conversion | click) for what the model sees: the value of a click, and pCTR * pCVR is
    P(conversion | impression), the value of an impression. Over impressions that are seldom clicked pCVR reads
    above their mean conversion probability when a trait the features miss raises both clicks and conversions
    (the synthetic world's interest match: 4.9-5.4x over all impressions), and no map fitted on logged outcomes
    can tell those apart; pulling pCVR down there under-prices the clicks that do happen and spoils pCTR *
    pCVR (``benchmarks/bench_rank_world.py --parts cvr``)."""
    calibrators = [fit_calibrator(y[:, 0], raw[:, 0], method)]
    if raw.shape[1] == 2:
        clicked = y[:, 0] > 0.5
        calibrators.append(fit_calibrator(y[clicked, 1], cvr_tower(raw[clicked]), method) if clicked.any()
                           else Calibrator())
    return calibrators


def fit_calibrator(y: np.ndarray, p: np.ndarray, method: str = "platt") -> Calibrator:
    """Fit on validation labels ``y`` and predictions ``p``.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 5000); y = (rng.uniform(size=5000) < p ** 2).astype(float)
    >>> cal = fit_calibrator(y, p, "platt")
    >>> from adpilot.measure.metrics import ece
    >>> ece(y, cal.apply(p), n_bins=15) < ece(y, p, n_bins=15)
    True
    """
    if method not in METHODS:
        raise UserError(f"`calibration` must be one of {list(METHODS)}, got {method!r}")
    y = np.asarray(y, np.float64)
    if method == "none" or y.min() == y.max():
        return Calibrator()
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
        return Calibrator("isotonic", xs=tuple(iso.X_thresholds_), ys=tuple(iso.y_thresholds_))
    logits = _logit(p)
    mu, sd = float(logits.mean()), float(logits.std()) or 1.0
    z = (logits - mu) / sd  # standardised, so that the damped steps reach the optimum when logits span a narrow range
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    target = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))  # Platt's smoothed targets
    a, b = 1.0, 0.0
    for _ in range(100):  # damped Newton steps on the log loss of sigmoid(a z + b)
        q = expit(a * z + b)
        w = q * (1 - q) + 1e-9
        grad = np.array([((q - target) * z).sum(), (q - target).sum()])
        hess = np.array([[(w * z * z).sum(), (w * z).sum()], [(w * z).sum(), w.sum()]]) + 1e-6 * np.eye(2)
        step = np.clip(np.linalg.solve(hess, grad), -1.0, 1.0)
        a, b = min(max(a - step[0], 1e-3), 100.0 * sd), b - step[1]  # a > 0 keeps the ranking
        if np.abs(step).max() < 1e-8:
            break
    return Calibrator("platt", params=(float(a / sd), float(b - a * mu / sd)))
