"""Sizes of training by the numbers, torch-free: bytes of state per parameter, what a checkpoint
holds, the embedding's rows, training FLOPs per token and a model's training memory.

The one home of these rules for the engine (``engine.model``, ``engine.limits``) and the cockpit
(``cockpit.checks``: model facts, the memory estimate, disk space; ``cockpit presets``).
"""

from __future__ import annotations

import math

#: Bytes per parameter of training state with bf16 mixed precision and AdamW, as this engine trains
#: (Accelerate ``mixed_precision="bf16"``: fp32 weights, bf16 autocast compute):
#: fp32 weights 4 + fp32 gradients 4 + AdamW first and second moments 4 + 4.
BYTES_PER_PARAM = {"weights": 4, "grads": 4, "optimizer": 8}

#: Bytes per parameter of a checkpoint: fp32 weights and AdamW's two fp32 moments (no gradients).
CHECKPOINT_BYTES_PER_PARAM = BYTES_PER_PARAM["weights"] + BYTES_PER_PARAM["optimizer"]


def embedding_rows(tokenizer_vocab: int, override: int | None = None) -> int:
    """Rows of the embedding (and output layer): the tokenizer's vocabulary, or ``model.vocab_size``
    when it pads beyond it (a multiple of 64 is faster on GPUs). A ``model.vocab_size`` below the
    tokenizer's is :func:`embedding_too_small`'s business; here the tokenizer wins."""
    return tokenizer_vocab if override is None else max(int(override), tokenizer_vocab)


def embedding_too_small(tokenizer_vocab: int, override: int | None) -> str | None:
    """What is wrong when ``model.vocab_size`` cannot hold the tokenizer's vocabulary, else None."""
    if override is None or int(override) >= tokenizer_vocab:
        return None
    return (
        f"model.vocab_size ({int(override)}) is smaller than the tokenizer's vocabulary ({tokenizer_vocab:,}); "
        f"remove it, or set at least {tokenizer_vocab} (e.g. a multiple of 64 for speed)"
    )


def train_flops_per_token(
    active_params: int, embedding_params: int, layers: int, attention_dim: int, seq_len: int
) -> float:
    """Training FLOPs per token: 6 x active non-embedding parameters plus attention (PaLM, appendix B;
    torchtitan: 6 N + 12 L H Q T, with H heads of Q dimensions each, ``attention_dim`` = H Q, the
    hidden size unless head_dim is set). For a mixture of experts only the experts a token is
    routed to are active."""
    return 6.0 * (active_params - embedding_params) + 12.0 * layers * attention_dim * seq_len


def training_memory(
    n_params: int, layers: int, hidden: int, vocab_size: int, experts_per_token: int, seq_len: int
) -> dict[str, int]:
    """Estimated training memory in bytes, bf16 mixed precision + AdamW on one device, no sharding.

    - ``weights``/``grads``/``optimizer``: fp32 weights (4 B), fp32 gradients (4 B) and AdamW's two
      fp32 moments (8 B) per parameter: 16 B/param (``BYTES_PER_PARAM``), for all parameters,
      experts included.
    - ``activations_per_seq``: a rough extra for one sequence of ``seq_len`` tokens without
      activation checkpointing: 34 x seq_len x hidden bytes per layer (Korthikanti et al. 2022,
      16-bit activations, fused attention so no seq_len^2 scores; the MLP share, 19 of the 34,
      scaled by experts per token for a mixture of experts) plus the logits (bf16 + fp32 for the
      loss, 6 B x seq_len x vocab). Multiply by the micro batch size.
    Framework overhead, the CUDA context and fragmentation are not included."""
    per_layer = seq_len * hidden * (15 + 19 * max(experts_per_token, 1))
    activations = layers * per_layer + 6 * seq_len * vocab_size
    mem = {key: n_params * b for key, b in BYTES_PER_PARAM.items()}
    mem["states"] = sum(mem.values())
    mem["activations_per_seq"] = activations
    return mem


def steps_for_epochs(epochs: float, sequences: int, sequences_per_step: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``sequences`` training sequences (windows of
    ``seq_len`` tokens), ``sequences_per_step`` at a time (micro batch x accumulation x processes)."""
    return max(1, math.ceil(epochs * sequences / sequences_per_step))
