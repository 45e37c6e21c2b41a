"""The GGUF header reader against gguf-py's on a small file written by gguf-py's writer: the same scalar and
string fields (arrays, such as a vocabulary, stepped over), the same tensors with the same bytes, and damaged files
refused with the file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adpilot.create.gguf_header import read_header
from adpilot.errors import InputFileError

gguf = pytest.importorskip("gguf")


def _write(path: Path) -> Path:
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_uint32("qwen2.block_count", 2)
    writer.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_string("general.name", "tiny 模型")
    writer.add_bool("tokenizer.ggml.add_bos_token", False)
    writer.add_array("tokenizer.ggml.tokens", ["a", "词", "<|im_end|>"] * 50)
    writer.add_array("tokenizer.ggml.token_type", [1, 2, 3] * 50)
    rng = np.random.default_rng(0)
    writer.add_tensor("blk.0.attn_norm.weight", rng.normal(size=96).astype(np.float32))
    weights = rng.normal(size=(3, 64)).astype(np.float32)
    writer.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0),
                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.1.attn_q.weight", rng.normal(size=(5, 32)).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_fields_and_tensors_match_gguf_py(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path / "tiny.gguf")
    fields, tensors = read_header(path)
    reader = gguf.GGUFReader(str(path))
    expected = {k: f.contents() for k, f in reader.fields.items()
                if not k.startswith("GGUF.") and not isinstance(f.contents(), list)}
    assert fields == pytest.approx(expected) and fields["general.name"] == "tiny 模型"
    assert "tokenizer.ggml.tokens" not in fields  # arrays are stepped over, not read
    assert [t.name for t in tensors] == [t.name for t in reader.tensors]
    for mine, theirs in zip(tensors, reader.tensors, strict=True):
        assert mine.tensor_type == theirs.tensor_type and mine.n_elements == theirs.n_elements
        assert mine.shape == tuple(int(d) for d in reversed(theirs.shape.tolist()))
        np.testing.assert_array_equal(mine.data, np.asarray(theirs.data).reshape(-1).view(np.uint8))
    assert [t.shape for t in tensors] == [(96,), (3, 64), (5, 32)]


def test_damaged_files_are_refused_with_their_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    whole = _write(tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[:-10])
    with pytest.raises(InputFileError, match=r"cut.gguf: tensor blk.1.attn_q.weight runs past the end"):
        read_header(tmp_path / "cut.gguf")
    (tmp_path / "header.gguf").write_bytes(whole[:200])
    with pytest.raises(InputFileError, match=r"header.gguf ends inside its GGUF header"):
        read_header(tmp_path / "header.gguf")
    (tmp_path / "other.bin").write_bytes(b"PK\x03\x04" + whole[4:])
    name = b"blk.0.attn_norm.weight"
    at = whole.index(name) + len(name) + 4 + 8  # after the name: n_dims (u32) and one dim (u64), then the type
    (tmp_path / "type.gguf").write_bytes(whole[:at] + (999).to_bytes(4, "little") + whole[at + 4:])
    with pytest.raises(InputFileError, match=r"type.gguf: tensor blk.0.attn_norm.weight has unknown ggml type 999"):
        read_header(tmp_path / "type.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    for name in ("other.bin", "empty.gguf"):
        with pytest.raises(InputFileError, match=rf"{name} is not a GGUF file"):
            read_header(tmp_path / name)
