"""Platt calibration must reach the log-loss optimum even when the raw logits span a narrow range (a model that
ranks well but whose scores sit near one value), where unscaled Newton steps stopped far from it."""

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from adpilot.rank.calibration import fit_calibrator


def test_platt_matches_logistic_regression_on_narrow_logits() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(-0.3, 0.05, 20_000)
    y = (rng.uniform(size=z.size) < expit(10 * z + 1.5)).astype(float)
    cal = fit_calibrator(y, expit(z), "platt")
    reference = LogisticRegression(C=1e6).fit(z[:, None], y)
    a, b = cal.params
    assert abs(a - reference.coef_[0][0]) < 0.05 * reference.coef_[0][0]
    assert abs(b - reference.intercept_[0]) < 0.1
    assert abs(cal.apply(expit(z)).mean() - y.mean()) < 1e-3
