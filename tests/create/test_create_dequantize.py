"""GGUF dequantisation by llama.cpp's C routines: bit-identical to gguf-py's numpy reference on every block type
the default model holds (random blocks, so scales and codes cover their whole range), and a tensor whose bytes do
not fill its blocks is refused before the C routine could read past them."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")

from adpilot.create.decoder import c_dequantizer, dequantize  # noqa: E402
from adpilot.create.gguf_header import GGUFTensor  # noqa: E402
from adpilot.errors import UserError  # noqa: E402

KINDS = ("Q4_K", "Q5_0", "Q6_K", "Q8_0")
"""The quantised types of the default Qwen GGUF (F32 tensors take gguf-py's path)."""


def _tensor(kind: str, blocks: int, extra_bytes: int = 0) -> GGUFTensor:
    kind_id = gguf.GGMLQuantizationType[kind]
    block, size = gguf.GGML_QUANT_SIZES[kind_id]
    data = np.random.default_rng(0).integers(0, 256, blocks * size + extra_bytes, dtype=np.uint8)
    return GGUFTensor(f"blk.0.{kind}.weight", kind_id, (blocks * block,), blocks * block, data)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # random fp16 scales include NaN and inf
@pytest.mark.parametrize("kind", KINDS)
def test_llama_cpp_dequantises_exactly_as_gguf_py(kind: str) -> None:
    assert c_dequantizer(kind) is not None  # the C path, not gguf-py's fallback, is under test
    tensor = _tensor(kind, blocks=64)
    fast = dequantize(tensor)
    assert fast.dtype == np.float32 and fast.shape == (tensor.n_elements,) and fast.flags.writeable
    np.testing.assert_array_equal(fast, gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1))


def test_a_tensor_short_of_its_blocks_is_refused() -> None:
    with pytest.raises(UserError, match=r"blk.0.Q4_K.weight holds 1295 bytes; 2304 Q4_K weights need 1296: the "
                                        r"model file is damaged"):
        dequantize(_tensor("Q4_K", blocks=9, extra_bytes=-1))


def test_float_tensors_are_copied_not_viewed() -> None:
    data = np.arange(6, dtype=np.float32).view(np.uint8)
    data.flags.writeable = False
    tensor = GGUFTensor("norm", gguf.GGMLQuantizationType.F32, (6,), 6, data)
    assert c_dequantizer("F32") is None
    values = dequantize(tensor)
    assert values.flags.writeable and np.array_equal(values, np.arange(6, dtype=np.float32))
