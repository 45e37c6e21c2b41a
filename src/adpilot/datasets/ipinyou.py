"""iPinYou: bidding episodes for replay (rlb-dp reduction) and one-hot CTR data in libFM format.

Bidding (``ipinyou_rtb_rlbdp``): ``validation_1000/<campaign>.validation.txt`` is a header line
``<feature_dim>\\t<episode length>`` then episodes, each an episode-number line followed by auctions
``click\\tmarket_price\\tpCTR`` (market price = CPM in RMB fen); ``info_<campaign>.json`` holds train/test totals and
the train market-price histogram, ``<campaign>.train-info.txt`` the train CPC/CPM/CTR.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from adpilot.datasets._common import PathLike, member, open_text, source_path
from adpilot.errors import InputFileError


@dataclass(frozen=True)
class BiddingEpisodes:
    """Auctions of one campaign cut into episodes; per-auction arrays have length n_auctions.

    ``info`` is ``info_<campaign>.json`` (``imp_train``, ``clk_train``, ``cost_train``, ``price_counter_train``...)
    or empty when absent; ``train_info`` has ``CPC``, ``CPM``, ``avg ctr`` (floats) of the train period.
    """

    campaign: str
    feature_dim: int
    episode: np.ndarray  # int32 episode number of each auction
    click: np.ndarray  # int8
    market_price: np.ndarray  # int32, CPM in fen
    pctr: np.ndarray  # float64
    info: dict[str, object]
    train_info: dict[str, float]

    @property
    def n_auctions(self) -> int:
        return len(self.click)

    def episodes(self) -> list[slice]:
        """One slice per episode into the per-auction arrays (episodes are contiguous)."""
        bounds = np.flatnonzero(np.diff(self.episode)) + 1
        edges = [0, *bounds.tolist(), self.n_auctions]
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def ipinyou_campaigns(path: PathLike | None = None) -> list[str]:
    """Campaign ids with an episodes file under ``path`` (default ``<shared>/ipinyou_rtb_rlbdp``)."""
    folder = source_path(path, "ipinyou_rtb_rlbdp") / "validation_1000"
    return sorted(p.name.split(".")[0] for p in folder.glob("*.validation.txt"))


def read_episodes_file(file: Path) -> tuple[int, np.ndarray, np.ndarray]:
    """(feature_dim, episode number per auction, auctions (n, 3) float64) of an rlb-dp episodes file."""
    with open(file) as handle:
        header = handle.readline().split()
        rows = [line.split() for line in handle if line.strip()]
    try:
        feature_dim = int(header[0])
        episode, current, auctions = [], 0, []
        for row in rows:
            if len(row) == 1:
                current = int(row[0])
            else:
                episode.append(current)
                auctions.append((float(row[0]), float(row[1]), float(row[2])))
    except (ValueError, IndexError):
        raise InputFileError(f"{file} is not an rlb-dp episodes file (`click market_price pCTR` lines)") from None
    return feature_dim, np.asarray(episode, np.int32), np.asarray(auctions, np.float64).reshape(-1, 3)


def _train_info(file: Path) -> dict[str, float]:
    info = {}
    for line in file.read_text().splitlines():
        key, _, value = line.partition(":")
        if key != "counter" and value.strip():
            info[key.strip()] = float(value)
    return info


def load_ipinyou_bidding(campaign: str, path: PathLike | None = None, episodes_file: PathLike | None = None
                         ) -> BiddingEpisodes:
    """Read campaign ``campaign``'s episodes (``episodes_file`` overrides the default validation file)."""
    folder = source_path(path, "ipinyou_rtb_rlbdp")
    file = Path(episodes_file) if episodes_file else member(folder / "validation_1000", f"{campaign}.validation.txt")
    feature_dim, episode, auctions = read_episodes_file(source_path(file, str(file)))
    info_file = folder / f"info_{campaign}.json"
    train_file = folder / "validation_1000" / f"{campaign}.train-info.txt"
    return BiddingEpisodes(
        campaign=campaign, feature_dim=feature_dim, episode=episode, click=auctions[:, 0].astype(np.int8),
        market_price=auctions[:, 1].astype(np.int32), pctr=auctions[:, 2],
        info=json.loads(info_file.read_text()) if info_file.is_file() else {},
        train_info=_train_info(train_file) if train_file.is_file() else {},
    )


@dataclass(frozen=True)
class LibFMData:
    """One-hot CTR rows: ``X`` CSR (n, n_features) of 0/1, ``y`` int8 (n,); ``field_of`` (n_features,) field names."""

    X: sp.csr_matrix
    y: np.ndarray
    field_of: np.ndarray


def _libfm_block(file: Path, lines: list[tuple[int, list[str]]]) -> LibFMData:
    """Numbered, split lines as one CSR block; vectorised when every token is ``idx:val``, else line by line so
    that a bad line is named."""
    flat = [t for _, parts in lines for t in parts[1:]]
    text = " ".join(flat)
    lengths = np.fromiter((len(parts) - 1 for _, parts in lines), np.int64, len(lines))
    pairs = text.replace(":", " ").split() if text.count(":") == len(flat) else []
    try:
        labels = np.array([parts[0] for _, parts in lines], dtype=np.float64).astype(np.int8)
        indices = np.array(pairs[0::2], dtype=np.int64)
        ones = set(pairs[1::2]) <= {"1"}  # one-hot files: skip parsing the values
        values = np.ones(len(indices), np.float32) if ones else np.array(pairs[1::2], dtype=np.float32)
        fast = len(pairs) == 2 * len(flat)
    except ValueError:
        fast = False
    if not fast:
        labels, index_list, value_list = np.zeros(len(lines), np.int8), [], []
        for row, (number, parts) in enumerate(lines):
            try:
                labels[row] = int(float(parts[0]))
                for item in parts[1:]:
                    idx, _, val = item.partition(":")
                    index_list.append(int(idx))
                    value_list.append(float(val or 1))
            except ValueError:
                raise InputFileError(f"{file} line {number} is not libFM (`label idx:value ...`)") from None
        indices, values = np.asarray(index_list, np.int64), np.asarray(value_list, np.float32)
    if (indices < 0).any():
        raise InputFileError(f"{file} has a negative feature index")
    indptr = np.r_[0, np.cumsum(lengths)]
    X = sp.csr_matrix((values, indices, indptr), shape=(len(lines), int(indices.max(initial=-1)) + 1))
    return LibFMData(X, labels, np.full(X.shape[1], "", dtype=object))


def iter_libfm(file: PathLike, batch_rows: int = 200_000) -> Iterator[LibFMData]:
    """``label idx:val ...`` lines (``.gz`` too) as CSR blocks of at most ``batch_rows`` rows, so a file larger
    than memory streams; each block is ``max index + 1`` wide, keeps each line's token order and has no field
    names."""
    file = source_path(file, str(file))
    with open_text(file) as handle:
        start = 1
        while raw := list(islice(handle, batch_rows)):
            lines = [(number, parts) for number, parts in enumerate(map(str.split, raw), start) if parts]
            start += len(raw)
            if lines:
                yield _libfm_block(file, lines)


def load_libfm(file: PathLike, featindex: PathLike | None = None) -> LibFMData:
    """Read ``label idx:val ...`` lines; ``featindex`` (``field:value<TAB>index``) names each feature's field."""
    blocks = list(iter_libfm(file))
    names: dict[int, str] = {}
    if featindex is not None:
        for number, line in enumerate(source_path(featindex, str(featindex)).read_text().splitlines(), 1):
            key, _, idx = line.rpartition("\t")
            digits = re.match(r"\d+", idx)  # the iPinYou file has one index with trailing junk ("42悠易互通.")
            if digits is None:
                raise InputFileError(f"{featindex} line {number} is not `field:value<TAB>index`")
            names[int(digits.group())] = key.split(":", 1)[0]
    n_features = max(max((b.X.shape[1] for b in blocks), default=0), max(names, default=-1) + 1)
    X = sp.vstack([sp.csr_matrix((b.X.data, b.X.indices, b.X.indptr), shape=(b.X.shape[0], n_features))
                   for b in blocks], format="csr") if blocks else sp.csr_matrix((0, n_features), dtype=np.float32)
    y = np.concatenate([b.y for b in blocks]) if blocks else np.zeros(0, np.int8)
    field_of = np.array([names.get(i, "") for i in range(n_features)], dtype=object)
    return LibFMData(X, y, field_of)


def load_ipinyou_ctr(file: PathLike | None = None, path: PathLike | None = None) -> LibFMData:
    """The iPinYou libFM sample: ``file`` (default ``train.fm.txt``) with the folder's ``featindex.txt``."""
    folder = source_path(path, "ipinyou_deepctr_fm")
    return load_libfm(file if file is not None else member(folder, "train.fm.txt"), member(folder, "featindex.txt"))
