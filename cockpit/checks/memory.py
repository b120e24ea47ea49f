"""Memory: will training fit on each device? An estimate from the model's shape, torch-free.

The estimate (``estimate_memory``) is per device (per process), in bytes, for the engine as it
trains: Accelerate mixed precision keeps fp32 parameters and autocasts the compute, so every
precision holds

- ``weights`` fp32 (4 B/param), ``grads`` fp32 (4 B/param), ``optimizer`` AdamW's two fp32
  moments (8 B/param); with ``distributed.strategy: fsdp`` over several processes these three are
  sharded (divided by the process count) and the gathered units come back as ``fsdp_gathered``;
  DDP over several processes adds its gradient buckets (``ddp_buckets``, 4 B/param);
- ``weight_copies``: bf16/fp16 only, the autocast copies of the weights (2 B/param) that the
  forward pass makes and the backward pass keeps;
- ``activations``: what the forward pass saves for the backward pass, counted tensor by tensor for
  each family (``activation_bytes_per_token``; norms, attention statistics, the residual stream
  and the loss's log-softmax in fp32, projections and MLP in the compute dtype, FlashAttention-style
  attention so nothing grows with seq_len squared) times the tokens of a micro batch. Both
  ``activations_no_ckpt`` and ``activations_ckpt`` are given (gradient checkpointing keeps each
  layer's input and recomputes one layer at a time), ``activations`` is the configured one;
- ``transient``: the backward pass's peak beyond what was saved: the gradients of the logits (two
  fp32 copies of batch x vocab), and one layer's activation gradients;
- on the CPU the activations and the transient are scaled by ``CPU_ACTIVATION_FACTOR`` (what the
  resident set really grows by), and checkpointing leaves ``CPU_CKPT_RETAINED`` of each layer's
  activations resident;
- ``workspace``: what a step adds beyond its tensors (CPU: glibc arenas, oneDNN scratch; CUDA:
  cuBLAS workspace, allocator rounding);
- ``training``: the sum of the above -- *the memory training adds to the process*. This is the
  quantity the dry run measures (``engine.dryrun``: on CUDA ``max_memory_allocated``, on the CPU the
  resident-set peak above the resident set just before the model was built), so the two can be
  compared side by side;
- ``overhead``: what the process holds besides training (CUDA: the context, about 0.5 GiB, and the
  caching allocator's slack; CPU: the Python process with torch, transformers and the token stream
  loaded), and ``total = training + overhead``, what has to fit in the device.

The CPU constants are calibrated against the dry run (``bench/memory_estimate.py``, results in
``bench/RESULTS.md``); the CUDA ones are the usual rules of thumb, not measured here.

Why this module is over 400 lines: the estimate, its calibration constants and the check that
reports it are one model of memory, read and tuned together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.sizing import BYTES_PER_PARAM
from engine.units import nbytes

Device = Literal["cpu", "cuda"]

MIB, GIB = 1 << 20, 1 << 30

#: Bytes per element of the compute dtype.
COMPUTE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

#: CPU: the resident set grows by more than the tensors alive at the peak: glibc keeps freed
#: blocks in its arenas and the backward pass's temporaries land in new pages. Calibrated against
#: the dry run of tiny and nano (bench/memory_estimate.py): the slope of the measured peak over
#: the tokens of a micro batch is 1.11-1.13 x the counted tensors.
CPU_ACTIVATION_FACTOR = 1.12
#: CPU with gradient checkpointing: the recomputation leaves part of each layer's activations
#: resident (allocator fragmentation), 0.1-0.3 of a layer's per layer in the dry runs.
CPU_CKPT_RETAINED = 0.2
#: CPU: workspace of a training step beyond the tensors counted (arenas, oneDNN scratch): the
#: intercept of the measured peak over tokens, 4-12 MiB. The runtime's one-time start-up (autograd's
#: engine, thread pools, ~30 MiB) is part of the process baseline, as the dry run measures it.
CPU_WORKSPACE = 8 * MIB
#: CPU: what the engine process holds before its model exists (Python, torch, transformers,
#: Accelerate, the tokenizer, the started runtime); measured ~460 MiB by the dry run, rounded up.
CPU_PROCESS_BASELINE = 480 * MIB
#: CUDA: context and kernels, outside max_memory_allocated (0.3-0.6 GiB on recent GPUs).
CUDA_CONTEXT = 600 * MIB
#: CUDA: cuBLAS workspace and allocator rounding, inside the measured peak.
CUDA_WORKSPACE = 64 * MIB
#: CUDA: the caching allocator reserves more than it hands out (fragmentation).
CUDA_ALLOCATOR_SLACK = 0.10


def activation_bytes_per_token(facts: dict[str, Any], precision: str = "fp32") -> dict[str, float]:
    """Bytes the forward pass saves for the backward pass, per token of a micro batch.

    Returns ``layer`` (one decoder layer without checkpointing), ``layer_ckpt`` (one layer with
    gradient checkpointing: its input, plus the router's logits for a mixture of experts),
    ``head`` (final norm and the loss's fp32 log-softmax over the vocabulary) and ``logits`` (one
    fp32 copy of the logits). Counted from the tensors Transformers' modeling code saves; in fp32
    a test keeps it within 2% of what ``torch.autograd.graph.saved_tensors_hooks`` sees for each
    family (the rotary tables, shared by the layers, are left out). The compute-dtype split for
    bf16/fp16 follows CUDA autocast's rules and is not measured here."""
    c = COMPUTE_BYTES[precision]
    f32 = 4
    h, q, kv, i = facts["hidden"], facts["q_dim"], facts["kv_dim"], facts["intermediate"]
    heads, V = facts["heads"], facts["vocab_size"]
    if facts["family"] == "gpt_neox":
        # fp32: residual input (shared by both LayerNorms), the two LayerNorm outputs, softmax stats;
        # compute dtype: the LayerNorm outputs as cast for the linears, fused qkv, rotary copies,
        # attention output, MLP input and GELU output.
        layer = f32 * (3 * h + heads + 4) + c * (7 * h + 2 * i)
        head = f32 * h + c * h
        layer_ckpt = f32 * h
    else:
        # RMSNorm x2: fp32 input and normalised value (+ rsqrt), output in the compute dtype;
        # attention: rotated q and k, v, output, fp32 log-sum-exp per head.
        norms_attn = f32 * (4 * h + 2 + heads) + c * (2 * h + 2 * q + 2 * kv)
        if facts["family"] == "mixtral":
            E, k = facts["experts"], facts["experts_per_token"]
            # each token's copy per routed expert: its input, gate, up, SiLU, product, output;
            # router logits and routing weights in fp32
            layer = norms_attn + k * c * (4 * i + 2 * h) + f32 * (2 * E + 12 * k + 1)
            layer_ckpt = f32 * (h + 2 * E)
        else:
            layer = norms_attn + c * 4 * i  # gate, up, SiLU(gate), product
            layer_ckpt = f32 * h
        head = f32 * (2 * h + 1) + c * h
    return {
        "layer": float(layer),
        "layer_ckpt": float(layer_ckpt),
        "head": float(head + f32 * V + 16),
        "logits": float(f32 * V),
    }


def estimate_memory(
    facts: dict[str, Any],
    cfg: Any,
    nproc: int = 1,
    *,
    device: Device = "cuda",
    micro_batch_size: int | None = None,
    gradient_checkpointing: bool | None = None,
) -> dict[str, Any]:
    """Training memory per device in bytes for the model ``facts`` (``model_facts``) trained as
    ``cfg`` (a RunConfig) says, with ``nproc`` processes, on ``device`` (see the module docstring
    for each key). ``micro_batch_size`` and ``gradient_checkpointing`` replace the config's."""
    train = cfg.train
    mb = train.micro_batch_size if micro_batch_size is None else micro_batch_size
    ckpt = train.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    precision = train.precision
    # one process ignores the strategy; CPU processes run DDP only (the engine refuses FSDP there)
    strategy = cfg.distributed.strategy if nproc > 1 and device == "cuda" else "ddp"
    P, L = facts["total_params"], facts["layers"]
    tokens = mb * train.seq_len
    c = COMPUTE_BYTES[precision]

    shard = nproc if strategy == "fsdp" else 1
    mem: dict[str, Any] = {key: math.ceil(P * b / shard) for key, b in BYTES_PER_PARAM.items()}
    offload = strategy == "fsdp" and cfg.distributed.fsdp.cpu_offload
    if offload:  # sharded state lives in CPU memory between uses
        mem.update(weights=0, grads=0, optimizer=0)
    mem["states"] = mem["weights"] + mem["grads"] + mem["optimizer"]
    mem["weight_copies"] = 2 * P // shard if c == 2 else 0
    mem["ddp_buckets"] = 4 * P if strategy == "ddp" and nproc > 1 else 0
    gathered = 0
    if strategy == "fsdp":
        unit = max(facts["layer_params"], facts["embedding_params"] * (1 if facts["tied_embeddings"] else 2))
        if cfg.distributed.fsdp.reshard_after_forward:
            gathered = 2 * unit * c + unit * 4  # this unit and the prefetched one, and its full gradients
        else:  # every unit stays gathered from its forward to its backward
            gathered = P * c + unit * 4
    mem["fsdp_gathered"] = gathered

    act = activation_bytes_per_token(facts, precision)
    no_ckpt = tokens * (L * act["layer"] + act["head"])
    # checkpointing: each layer's input, and the layer being recomputed in the backward pass
    with_ckpt = tokens * (L * act["layer_ckpt"] + act["layer"] + act["head"])
    # the backward pass's peak: the logits' gradients (two fp32 copies) and one layer's activation gradients
    transient = tokens * (2 * act["logits"] + act["layer"])
    if device == "cpu":
        with_ckpt += tokens * L * CPU_CKPT_RETAINED * act["layer"]
        no_ckpt, with_ckpt, transient = (x * CPU_ACTIVATION_FACTOR for x in (no_ckpt, with_ckpt, transient))
    mem["activations_no_ckpt"] = int(no_ckpt)
    mem["activations_ckpt"] = int(with_ckpt)
    mem["activations"] = mem["activations_ckpt"] if ckpt else mem["activations_no_ckpt"]
    mem["transient"] = int(transient)
    mem["workspace"] = CPU_WORKSPACE if device == "cpu" else CUDA_WORKSPACE
    mem["training"] = (
        mem["states"]
        + mem["weight_copies"]
        + mem["ddp_buckets"]
        + gathered
        + mem["activations"]
        + mem["transient"]
        + mem["workspace"]
    )
    if device == "cpu":
        mem["overhead"] = CPU_PROCESS_BASELINE
    else:
        mem["overhead"] = CUDA_CONTEXT + int(CUDA_ALLOCATOR_SLACK * mem["training"])
    mem["total"] = mem["training"] + mem["overhead"]
    mem.update(
        device=device,
        precision=precision,
        strategy=strategy,
        nproc=nproc,
        micro_batch_size=mb,
        seq_len=train.seq_len,
        gradient_checkpointing=bool(ckpt),
        tokens_per_micro_batch=tokens,
        cpu_offload=bool(offload),
    )
    return mem


def largest_micro_batch(
    facts: dict[str, Any],
    cfg: Any,
    nproc: int,
    available_bytes: int,
    *,
    device: Device = "cuda",
    gradient_checkpointing: bool | None = None,
    limit: int = 1 << 16,
) -> int:
    """The largest micro batch whose ``total`` fits in ``available_bytes`` (0: not even one)."""

    def fits(mb: int) -> bool:
        return (
            estimate_memory(
                facts, cfg, nproc, device=device, micro_batch_size=mb, gradient_checkpointing=gradient_checkpointing
            )["total"]
            <= available_bytes
        )

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def tokenizer_vocab_size(ctx: CheckContext) -> tuple[int | None, str]:
    """The vocabulary the model will be sized with, and where it comes from: the tokenizer check's
    finding, the tokenizer at ``tokenizer.path``, ``tokenizer.vocab_size`` for one the run trains,
    or None (the preset's) for shards without a tokenizer."""
    cfg = ctx.cfg
    known = ctx.tokenizer or {}
    if known.get("vocab_size"):
        return int(known["vocab_size"]), (
            "tokenizer.vocab_size (trained at launch)"
            if known.get("will_train")
            else f"the tokenizer at {cfg.tokenizer.path}"
        )
    file = cfg.tokenizer.path / "tokenizer.json"
    if file.is_file():
        try:
            from tokenizers import Tokenizer

            return Tokenizer.from_file(str(file)).get_vocab_size(), f"the tokenizer at {cfg.tokenizer.path}"
        except Exception:
            pass
    if cfg.data.source in ("demo", "text", "jsonl"):
        return cfg.tokenizer.vocab_size, "tokenizer.vocab_size (trained at launch)"
    return None, f"preset {cfg.preset}"


def target_device(ctx: CheckContext) -> tuple[Device, list[dict]]:
    """Where the run trains: CUDA when NVML finds GPUs and torch is a CUDA build, else the CPU;
    with the GPUs found (``environment.gpus`` dicts)."""
    found = ctx.gpus
    if found is None:
        from cockpit.checks.environment import gpus

        found, _ = gpus()
    if not found:
        return "cpu", []
    from cockpit.checks.environment import torch_build

    build = torch_build()
    return ("cuda" if build.get("cuda") else "cpu"), found


@dataclass(frozen=True)
class MemoryBudget:
    """The memory a run can train in on this machine."""

    device: Device
    """Where it trains (``target_device``)."""
    available: int
    """Bytes free: on the smallest of the GPUs used, or the RAM all CPU processes share."""
    capacity: int | None
    """That GPU's total memory (None for RAM)."""
    where: str
    """What the figure is, for people (``GPU 0 (H100): 70 GiB free of 80 GiB``)."""


def memory_budget(ctx: CheckContext, device: Device, found: list[dict], nproc: int = 1) -> MemoryBudget:
    """The free memory of ``device`` (``target_device``) for ``nproc`` processes: the GPUs found
    (the first ``nproc``), or the RAM (``ctx.ram_free_bytes`` when given)."""
    if device == "cuda":
        smallest = min(found[:nproc], key=lambda g: g["memory_free"])
        available, capacity = int(smallest["memory_free"]), int(smallest["memory_total"])
        return MemoryBudget(
            device,
            available,
            capacity,
            f"GPU {smallest['index']} ({smallest['name']}): {nbytes(available)} free of {nbytes(capacity)}",
        )
    import psutil

    available = ctx.ram_free_bytes if ctx.ram_free_bytes is not None else int(psutil.virtual_memory().available)
    return MemoryBudget(
        device, available, None, f"RAM: {nbytes(available)} free" + (f" for {nproc} processes" if nproc > 1 else "")
    )


def fit_in(
    facts: dict[str, Any], cfg: Any, nproc: int, budget: MemoryBudget, est: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Whether training the model ``facts`` as ``cfg`` says with ``nproc`` processes fits ``budget``:
    ``needed`` (per GPU, or all CPU processes together: each holds its own copy), ``fits``,
    ``largest_micro_batch`` that fits (0: not even one) and ``per_process_available``. ``est``: the
    ``estimate_memory`` of it when already made."""
    device = budget.device
    est = est or estimate_memory(facts, cfg, nproc, device=device)
    need = est["total"] if device == "cuda" else est["total"] * nproc
    per_process = budget.available if device == "cuda" else budget.available // nproc
    return {
        "needed": need,
        "fits": need <= budget.available,
        "largest_micro_batch": largest_micro_batch(facts, cfg, nproc, per_process, device=device),
        "per_process_available": per_process,
    }


def _fix(cfg: Any, facts: dict, nproc: int, device: Device, available: int, fits_mb: int) -> str:
    """What to change so that it fits, best first."""
    train = cfg.train
    tips = []
    if 0 < fits_mb < train.micro_batch_size:
        accum = train.grad_accum_steps * math.ceil(train.micro_batch_size / fits_mb)
        tips.append(f"train.micro_batch_size {fits_mb} with train.grad_accum_steps {accum} (same batch)")
    if not train.gradient_checkpointing:
        mb_ckpt = largest_micro_batch(facts, cfg, nproc, available, device=device, gradient_checkpointing=True)
        if mb_ckpt > fits_mb:
            tips.append(f"train.gradient_checkpointing: true (micro batch up to {mb_ckpt})")
    if train.precision == "fp32" and device == "cuda":
        tips.append("train.precision: bf16")
    if device == "cuda" and cfg.distributed.strategy != "fsdp":
        tips.append("distributed.strategy: fsdp over several GPUs (--nproc)")
    elif device == "cuda" and nproc > 1 and not cfg.distributed.fsdp.cpu_offload:
        tips.append("more GPUs, or distributed.fsdp.cpu_offload: true")
    if not tips:
        tips.append("a smaller preset, a shorter train.seq_len, or a machine with more memory")
    return "; or ".join(tips)


def check_memory(ctx: CheckContext) -> list[CheckResult]:
    """``memory.model`` (shape and parameters), ``memory.estimate`` (the breakdown per device) and
    ``memory.fit`` (against the device's free memory; blocking when it does not fit). Leaves the
    facts in ``ctx.model``, the estimate in ``ctx.memory`` and the verdict in
    ``ctx.memory_fit`` (``fits``, ``available``, ``needed``, ``largest_micro_batch``)."""
    cfg = ctx.cfg
    if cfg is None:
        return []
    from cockpit.checks.model_facts import model_facts
    from presets import PresetError

    vocab, vocab_source = tokenizer_vocab_size(ctx)
    try:
        facts = model_facts(cfg, vocab)
    except PresetError as exc:
        return [result("memory.model", "Model", "skip", f"cannot size the model: {exc}", blocking=False)]
    facts["vocab_source"] = vocab_source
    ctx.model = facts
    out = []
    experts = f", {facts['experts']} experts (top {facts['experts_per_token']})" if facts["experts"] else ""
    active = f", {facts['active_params']:,} active per token" if facts["experts"] else ""
    out.append(
        result(
            "memory.model",
            "Model",
            "ok",
            f"{cfg.preset} ({facts['family']}): {facts['layers']} layers x {facts['hidden']} wide, "
            f"{facts['heads']} heads ({facts['kv_heads']} key-value){experts}; vocabulary {facts['vocab_size']:,} "
            f"({vocab_source}); {facts['total_params']:,} parameters{active}",
            **{k: v for k, v in facts.items()},
        )
    )

    device, found = target_device(ctx)
    nproc = max(1, ctx.nproc)
    est = estimate_memory(facts, cfg, nproc, device=device)
    ctx.memory = est
    train = cfg.train
    breakdown = (
        f"weights {nbytes(est['weights'])} + grads {nbytes(est['grads'])} + AdamW {nbytes(est['optimizer'])}"
        + (f" + autocast copies {nbytes(est['weight_copies'])}" if est["weight_copies"] else "")
        + (f" + DDP buckets {nbytes(est['ddp_buckets'])}" if est["ddp_buckets"] else "")
        + (f" + FSDP gathered {nbytes(est['fsdp_gathered'])}" if est["fsdp_gathered"] else "")
        + f" + activations {nbytes(est['activations'])}"
        + f" + backward peak {nbytes(est['transient'])} + workspace {nbytes(est['workspace'])}"
        + f" = training {nbytes(est['training'])}; + {'process' if device == 'cpu' else 'CUDA context/allocator'} "
        + f"{nbytes(est['overhead'])} = {nbytes(est['total'])}"
    )
    other = "ckpt" if not est["gradient_checkpointing"] else "no_ckpt"
    where = (
        f"per GPU ({est['strategy']} over {nproc})"
        if device == "cuda" and nproc > 1
        else "per GPU"
        if device == "cuda"
        else f"per process on the CPU{f' (x{nproc})' if nproc > 1 else ''}"
    )
    out.append(
        result(
            "memory.estimate",
            "Memory estimate",
            "ok",
            f"{nbytes(est['total'])} {where}, {train.precision}, micro batch {train.micro_batch_size} x "
            f"{train.seq_len} tokens{', gradient checkpointing' if est['gradient_checkpointing'] else ''}: "
            f"{breakdown} (activations {'without' if other == 'no_ckpt' else 'with'} checkpointing: "
            f"{nbytes(est['activations_' + other])})",
            **est,
        )
    )

    budget = memory_budget(ctx, device, found, nproc)
    available, what = budget.available, budget.where
    verdict = fit_in(facts, cfg, nproc, budget, est)
    need, fits_mb, per_process_available = (
        verdict["needed"],
        verdict["largest_micro_batch"],
        verdict["per_process_available"],
    )
    data = {
        "device": device,
        "available": available,
        "capacity": budget.capacity,
        "needed": need,
        "largest_micro_batch": fits_mb,
        "headroom": available - need,
    }
    ctx.memory_fit = {"fits": need <= available, **data}
    if need > available:
        fits = f"the largest micro batch that fits is {fits_mb}" if fits_mb else "not even micro batch 1 fits"
        out.append(
            result(
                "memory.fit",
                "Fits in memory",
                "fail",
                f"needs ~{nbytes(need)}, {what}: does not fit; {fits}",
                _fix(cfg, facts, nproc, device, per_process_available, fits_mb),
                **data,
            )
        )
    elif need > 0.9 * available:
        out.append(
            result(
                "memory.fit",
                "Fits in memory",
                "warn",
                f"needs ~{nbytes(need)}, {what}: less than 10% to spare (largest micro batch ~{fits_mb})",
                _fix(cfg, facts, nproc, device, per_process_available, fits_mb),
                **data,
            )
        )
    else:
        out.append(
            result(
                "memory.fit",
                "Fits in memory",
                "ok",
                f"needs ~{nbytes(need)}, {what} (micro batch up to ~{fits_mb} would fit)",
                **data,
            )
        )
    return out
