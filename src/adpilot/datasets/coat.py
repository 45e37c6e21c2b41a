"""Coat shopping (Schnabel et al. 2016): self-selected (MNAR) train ratings, uniformly random test ratings,
learned propensities, and one-hot user and item features: the reference for debiasing and unbiased evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adpilot.datasets._common import PathLike, member, source_path
from adpilot.errors import InputFileError


@dataclass(frozen=True)
class CoatData:
    """Dense matrices (290 users × 300 items; 0 = not rated): ``train`` MNAR ratings, ``test`` random-exposure ratings
    (int8 1–5), ``propensities`` (float64, P(observed) in train); ``user_features`` (290, 14) and ``item_features``
    (300, 33) one-hot, named by ``user_feature_names`` / ``item_feature_names`` (``field:value``)."""

    train: np.ndarray
    test: np.ndarray
    propensities: np.ndarray
    user_features: np.ndarray
    item_features: np.ndarray
    user_feature_names: list[str]
    item_feature_names: list[str]

    @staticmethod
    def triples(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, rating) arrays of the observed (non-zero) cells of a rating matrix."""
        users, items = np.nonzero(matrix)
        return users, items, matrix[users, items]


def _matrix(file: PathLike, dtype: type) -> np.ndarray:
    try:
        return np.loadtxt(file, dtype=dtype, ndmin=2)
    except ValueError:
        raise InputFileError(f"{file} is not a whitespace-separated numeric matrix") from None


def _names(file: PathLike) -> list[str]:
    return [line.strip() for line in Path(file).read_text().splitlines() if line.strip()]


def load_coat(path: PathLike | None = None) -> CoatData:
    """Read the Coat folder (default ``<shared>/coat_mnar``)."""
    folder = source_path(path, "coat_mnar")
    features = folder / "user_item_features"
    data = CoatData(
        train=_matrix(member(folder, "train.ascii"), np.int8),
        test=_matrix(member(folder, "test.ascii"), np.int8),
        propensities=_matrix(member(folder, "propensities.ascii"), np.float64),
        user_features=_matrix(member(features, "user_features.ascii"), np.int8),
        item_features=_matrix(member(features, "item_features.ascii"), np.int8),
        user_feature_names=_names(member(features, "user_features_map.txt")),
        item_feature_names=_names(member(features, "item_features_map.txt")),
    )
    if data.train.shape != data.test.shape or data.train.shape != data.propensities.shape:
        raise InputFileError(f"{folder}: train, test and propensities must have one shape, got "
                             f"{data.train.shape}, {data.test.shape}, {data.propensities.shape}")
    return data
