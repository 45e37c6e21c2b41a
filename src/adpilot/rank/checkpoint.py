"""Model files: one ``.npz`` with the weights as numpy arrays and a JSON header, so that the serving scorer
reads the same file without torch. The header carries :data:`adpilot.rank.base.FORMAT_VERSION`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from adpilot.errors import InputFileError, UserError
from adpilot.rank.base import FORMAT_VERSION

HEADER = "__header__"


def save_arrays(path: str | Path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``header`` (JSON-able) and ``arrays`` to ``path`` (``.npz`` appended if missing), atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = np.frombuffer(json.dumps({**header, "format_version": FORMAT_VERSION}).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{HEADER: blob}, **arrays)
    tmp.replace(path)
    return path


def load_arrays(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save_arrays`; another format version is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"model file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputFileError(f"{path} is not an adpilot model file ({error})") from None
    if HEADER not in arrays:
        raise InputFileError(f"{path} is not an adpilot model file (no header)")
    header = json.loads(arrays.pop(HEADER).tobytes().decode())
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{path} was written by model format version {version}; this adpilot reads version "
                        f"{FORMAT_VERSION}: retrain it with `adpilot train ctr`")
    if len(header.get("heads", ())) == 2 and not header.get("tower_calibration"):
        raise UserError(f"{path} calibrates ESMM's pCTCVR head instead of its CVR tower (its pCVR is not a "
                        "probability): retrain it with `adpilot train ctr`")
    return header, arrays
