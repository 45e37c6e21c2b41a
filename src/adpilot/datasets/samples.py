"""Tiny schema-reference samples of well-known CTR / conversion / sequence sets (Criteo, Avazu, MovieLens,
TaobaoAd, Ali-CCP, AliExpress, Amazon, Taobao UserBehavior, Diginetica, YOOCHOOSE), read with their real column
layouts. For loader and schema tests only: they are far too small to train on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from adpilot.datasets._common import PathLike, read_csv, source_path
from adpilot.errors import InputFileError, UserError

_T = "tiny_ctr_seq_samples/"
_R = _T + "torchrechub__ranking__data__"


@dataclass(frozen=True)
class Sample:
    """Where a sample lives under the shared root and how to parse it (``names`` when it has no header)."""

    file: str
    delimiter: str = ","
    names: tuple[str, ...] | None = None
    autogenerate: bool = False


SAMPLES: dict[str, Sample] = {
    "criteo": Sample("deepctr_samples/criteo_sample.txt"),
    "criteo_kaggle": Sample(_T + "criteo_kaggle2014_train.tiny.csv"),
    "criteo_torchrechub": Sample(_R + "criteo__criteo_sample.csv"),
    "avazu": Sample("deepctr_samples/avazu_sample.txt"),
    "avazu_torchrechub": Sample(_R + "avazu__train_sample.csv"),
    "movielens": Sample("deepctr_samples/movielens_sample.txt"),
    "taobao_ad_train": Sample(_T + "fuxictr__data__tiny_csv__train_sample.csv"),
    "taobao_ad_valid": Sample(_T + "fuxictr__data__tiny_csv__valid_sample.csv"),
    "taobao_ad_test": Sample(_T + "fuxictr__data__tiny_csv__test_sample.csv"),
    "ali_ccp_train": Sample(_R + "ali-ccp__ali_ccp_train_sample.csv"),
    "ali_ccp_val": Sample(_R + "ali-ccp__ali_ccp_val_sample.csv"),
    "ali_ccp_test": Sample(_R + "ali-ccp__ali_ccp_test_sample.csv"),
    "aliexpress_train": Sample(_R + "aliexpress__aliexpress_train_sample.csv"),
    "aliexpress_test": Sample(_R + "aliexpress__aliexpress_test_sample.csv"),
    "tiny_mtl_train": Sample(_T + "fuxictr__data__tiny_mtl__train.csv"),
    "tiny_mtl_test": Sample(_T + "fuxictr__data__tiny_mtl__test.csv"),
    "amazon_electronics": Sample(_R + "amazon-electronics__amazon_electronics_sample.csv"),
    "amazon_books": Sample(_R + "amazon-books__amazon_books_sample.csv"),
    "amazon_beauty": Sample(_R + "amazon-beauty__amazon_beauty_sample.csv"),
    "taobao_userbehavior": Sample(_T + "taobao_UserBehavior_head4321.csv",
                                  names=("user_id", "item_id", "category_id", "behavior", "ts")),
    "diginetica": Sample(_T + "torchrechub__matching__data__session_based__diginetica__train-item-views-sample.csv",
                         delimiter=";"),
    "yoochoose": Sample(_T + "torchrechub__matching__data__session_based__yoochoose__yoochoose-clicks-sample.dat",
                        names=("session_id", "ts", "item_id", "category")),
    "taobao_ad_dmr": Sample(_T + "paddlerec__models__rank__dmr__data__sample_data__alimama_sampled_train.txt",
                            autogenerate=True),
    "ali_ccp_esmm": Sample(_T + "paddlerec__models__multitask__esmm__data__train__small.txt"),
}
"""Every known sample by name; see ``SOURCE.txt`` in each folder for provenance."""


def load_sample(name: str, path: PathLike | None = None) -> pa.Table:
    """Sample ``name`` (a key of :data:`SAMPLES`) as an Arrow table; ``path`` overrides the file location."""
    if name not in SAMPLES:
        raise UserError(f"`name` must be one of {sorted(SAMPLES)}, got {name!r}")
    sample = SAMPLES[name]
    file = source_path(path, sample.file)
    if name == "ali_ccp_esmm":
        return _read_esmm(file)
    names = [f"f{i}" for i in range(_width(file))] if sample.autogenerate else sample.names
    return read_csv(file, names=list(names) if names else None, delimiter=sample.delimiter)


def _width(file: Path) -> int:
    with open(file) as handle:
        return len(handle.readline().split(","))


def _read_esmm(file: Path) -> pa.Table:
    """PaddleRec ESMM lines ``sample_id,click,purchase,field:feature,...`` (variable length)."""
    rows = [line.strip().split(",") for line in file.read_text().splitlines() if line.strip()]
    try:
        return pa.table({"sample_id": [int(r[0]) for r in rows], "click": [int(r[1]) for r in rows],
                         "purchase": [int(r[2]) for r in rows], "features": [r[3:] for r in rows]})
    except (ValueError, IndexError):
        raise InputFileError(f"{file} is not ESMM `sample_id,click,purchase,field:feature,...` lines") from None
