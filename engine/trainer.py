"""The Trainer: one run's training, from a built model to its last checkpoint.

    Trainer.build()                      engine.build: Accelerator (DDP or FSDP), data, tokenizer, model, optimizer
    Trainer.configure_model()            gradient checkpointing, torch.compile
    Trainer.load_state_dict()            with --resume (engine.resume.restore): optimizer, scheduler, data, RNG
    Trainer.fit()                        the loop; returns "finished", "stopped" or "failed"
      train_step()                       micro batches -> clip -> update(): optimizer step unless non-finite -> scheduler
      log_metrics()                      at step 1, every log_every steps, and the last step (engine.interval)
        read_back()                      per-step losses and gradient norms; skipped steps -> error events
                                         (engine.nonfinite: train.nonfinite skip / stop)
      run_eval()                         every eval_every steps and the last: ``eval`` event, best tracked
      run_gate()                         at the ``gate`` steps: evaluate, stop when not improving (engine.gate)
      poll_controls()                    commands, signals and limits: every step in one process,
                                         agreed on about once a second with several (Controls.agree)
        check_limits()                   stop before budget_usd / max_hours would be passed (engine.limits)
      save(reason)                       checkpoints/checkpoint-<step> (weights + state_dict), written and
                                         pruned by engine.saving

Why this module is over 400 lines: it is one class whose phases share the run's state (step,
counters, the logging interval, the controls, the last checkpoint). What is not the loop lives
apart: building (engine.build), the logging interval (engine.interval), non-finite steps
(engine.nonfinite), the budget arithmetic (engine.limits), evaluation (engine.evaluate), writing and
pruning checkpoints (engine.saving; their format: engine.checkpoint), commands and signals
(engine.controls); the process around it is engine.train's.

Only the logging steps (and checkpoints) read the losses and gradient norms back from the device;
in between they stay there, one small tensor per step. A non-finite step is skipped on the device
too (``train.nonfinite: skip``, fused AdamW's ``found_inf``), so the host never waits for the GPU
inside the logging interval; ``train.nonfinite: stop`` checks each step on the host instead. With
several processes, commands, signals and limits are agreed on about once a second (a small
all-reduce), so every process stops, pauses or saves at the same step. CUDA out of memory ends
the run with an ``error`` event that suggests what to change (:class:`TrainingFault`), and writes no
checkpoint of the failed step.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from engine.build import (
    TrainingData,
    build_model_and_optimizer,
    configure_model,
    device_description,
    load_data,
    make_accelerator,
    settle_schedule,
)
from engine.checkpoint import gather_state, restore_state, rng_state, set_rng_state
from engine.config import ConfigError, RunConfig
from engine.controls import Controls
from engine.evaluate import NoHeldOutData, eval_windows, evaluate
from engine.gate import RunGate
from engine.interval import LogInterval
from engine.limits import checkpoint_s_estimate, cost_usd, limit_reason
from engine.metrics import ConsoleSink, EventSink, MetricsLogger, tensorboard_sink
from engine.model import flops_per_token, peak_flops
from engine.nonfinite import NonFiniteSteps
from engine.optim import step_unless
from engine.protocol import PROTOCOL_VERSION
from engine.resume import ResumePoint
from engine.rundir import RunPaths, checkpoint_name
from engine.saving import CheckpointWriter

#: Seconds between command polls while paused.
PAUSE_POLL_S = 0.2


class TrainingFault(RuntimeError):
    """The training step failed in a way the user can fix; the message says how."""


def oom_message(step: int, train) -> str:
    return (
        f"CUDA out of memory at step {step} (micro_batch_size {train.micro_batch_size}, seq_len {train.seq_len}, "
        f"precision {train.precision}): lower train.micro_batch_size (and raise train.grad_accum_steps by the same "
        f"factor to keep the batch), shorten train.seq_len, use precision bf16, or turn on "
        f"train.gradient_checkpointing; no checkpoint was written for this step, the last saved one is intact"
    )


class Trainer:
    """One run's training: :meth:`build`, then :meth:`fit`; :meth:`state_dict` / :meth:`load_state_dict`
    for what a checkpoint carries besides the weights. Every attribute is declared here."""

    # Made by build():
    accelerator: Accelerator
    data: TrainingData  # tokenizer, training and held-out tokens (+ loss masks), batches
    model_config: Any  # the Transformers config
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    skip_on_device: bool  # the optimizer skips a non-finite step on the device (fused AdamW)
    n_params: int
    tokens_per_step: int  # all processes
    device: str
    peak_flops_total: float | None  # all processes; None on a CPU
    flops_per_token: float
    t_start: float  # perf_counter when fit() began

    def __init__(self, cfg: RunConfig, paths: RunPaths, bus, controls: Controls, main_process: bool = True):
        self.cfg, self.paths, self.bus, self.controls = cfg, paths, bus, controls
        self.main_process = main_process
        self.step = 0
        self.tokens_seen = 0
        self.state = "starting"
        self.last_saved_step: int | None = None
        self.best_eval_loss: float | None = None
        self.best_eval_step: int | None = None
        self.elapsed_before = 0.0  # training wall time of the run before this process (resumed runs)
        self.resumed_from: ResumePoint | None = None
        self.metrics: MetricsLogger | None = None
        self.tensorboard = None
        self.failure_reason: str | None = None  # why fit() ended "failed" (a fault it handled)
        self.nonfinite = NonFiniteSteps(cfg.train, bus)  # steps skipped for a non-finite loss
        self.control_every = 1  # steps between control checks (several processes: agreed at each sync)
        self.next_control_step = 0
        self.checkpoint_s: list[float] = []  # measured checkpoint durations, for the budget prediction
        self.checkpoints = CheckpointWriter(paths, bus, cfg.train.save_total_limit, self.info)  # main process
        self.interval = LogInterval()  # the steps since the last metrics event; fit() starts it afresh
        self.gate = RunGate(cfg.gate) if cfg.gate.enabled else None  # the in-run gate (config ``gate``)
        self.last_eval: tuple[int, float] | None = None  # (step, loss) of the latest evaluation

    # --- messages -------------------------------------------------------------------------

    def info(self, message: str, level: str = "info") -> None:
        """A ``log`` event and a line in engine.log."""
        self.bus.emit("log", level=level, message=message)
        if self.main_process:
            print(f"[{level}] {message}", flush=True)

    def set_state(self, state: str, reason: str | None = None) -> None:
        self.state = state
        payload = {"reason": reason} if reason else {}
        self.bus.emit("status", state=state, step=self.step, **payload)

    # --- build ----------------------------------------------------------------------------

    def build(self, before_model: Callable[[Any], None] | None = None) -> None:
        """Seeds, Accelerator, data, tokenizer, model, optimizer (engine.build). ``before_model`` is
        called with the model config just before the model is built (the dry run's memory baseline)."""
        cfg, train = self.cfg, self.cfg.train
        self.accelerator = acc = make_accelerator(cfg)
        self.data = load_data(cfg, acc, self.info)
        settle_schedule(train, self.data.batches.n_windows, acc.num_processes, self.info)
        built = build_model_and_optimizer(cfg, self.data.tokenizer, acc, before_model)
        self.model_config, self.model, self.optimizer = built.config, built.model, built.optimizer
        self.scheduler, self.n_params, self.skip_on_device = built.scheduler, built.n_params, built.skip_on_device

        self.tokens_per_step = train.tokens_per_micro_batch * train.grad_accum_steps * acc.num_processes
        self.device = device_description(acc)
        peak = peak_flops(self.device) if acc.device.type == "cuda" else None
        self.peak_flops_total = peak * acc.num_processes if peak else None
        self.flops_per_token = flops_per_token(self.model_config, self.n_params, train.seq_len)

    def configure_model(self) -> None:
        """Model options applied after build: gradient checkpointing, torch.compile."""
        configure_model(self.accelerator.unwrap_model(self.model), self.cfg.train, self.info)

    # --- the loop -------------------------------------------------------------------------

    def fit(self) -> str:
        """The loop; returns the final state: ``finished``, ``stopped`` or ``failed`` (with
        ``self.failure_reason`` saying why, e.g. a non-finite loss under ``train.nonfinite: stop``)."""
        cfg, train, acc = self.cfg, self.cfg.train, self.accelerator
        self.metrics = MetricsLogger([EventSink(self.bus), ConsoleSink(train.max_steps)] if acc.is_main_process else [])
        self.tensorboard = tensorboard_sink(self.paths.tensorboard) if acc.is_main_process else None
        if self.tensorboard is not None:
            self.metrics.add_sink(self.tensorboard)
        elif acc.is_main_process:
            self.info("tensorboard is not installed: no TensorBoard event files (pip install tensorboard)")
        self.bus.emit(
            "hello",
            protocol=PROTOCOL_VERSION,
            config=cfg.model_dump(mode="json"),
            preset=cfg.preset,
            params=self.n_params,
            world_size=acc.num_processes,
            device=self.device,
            pid=os.getpid(),
            max_steps=train.max_steps,
            tokens_per_step=self.tokens_per_step,
        )
        self.info(
            f"model: preset {cfg.preset}, {self.n_params:,} parameters, vocab {len(self.data.tokenizer):,}; "
            f"device {self.device} x{acc.num_processes}; {self.tokens_per_step:,} tokens per step"
        )
        self.set_state("running")

        if train.eval_every or self.gate is not None:  # no held-out text: say so now, not at the first evaluation
            try:
                eval_windows(self.data.val_tokens, train.seq_len, 1)
            except NoHeldOutData as exc:
                raise ConfigError(str(exc)) from None
        if self.gate is not None:
            self.gate_baseline()
        self.t_start = time.perf_counter()
        self.interval.reset()
        self.poll_controls(force=True)
        if self.controls.stop_reason:  # stopped before the first step: nothing worth saving
            return "stopped"
        while self.step < train.max_steps:
            t_step = time.perf_counter()
            try:
                values, applied = self.train_step()
            except torch.cuda.OutOfMemoryError as exc:
                self.optimizer.zero_grad(set_to_none=True)
                raise TrainingFault(oom_message(self.step + 1, train)) from exc
            if not applied:  # train.nonfinite: stop
                self.failure_reason = self.nonfinite.stop(self.step + 1, *values.tolist(), checkpoint_name(self.step))
                break
            self.step += 1
            self.tokens_seen += self.tokens_per_step
            self.interval.add(values)
            if self.step == 1 or self.step % train.log_every == 0 or self.step == train.max_steps:
                self.log_metrics()
                if self.failure_reason:  # too many non-finite steps in a row
                    break
            if train.eval_every and (self.step % train.eval_every == 0 or self.step == train.max_steps):
                self.run_eval()
            if self.gate is not None and self.gate.due(self.step):
                self.run_gate()

            self.poll_controls(time.perf_counter() - t_step)
            if self.controls.stop_reason or self.step == train.max_steps:
                break  # the final checkpoint below covers any pending request
            if self.controls.checkpoint_requested:
                self.controls.checkpoint_requested = False
                self.save("command")
            elif train.save_every and self.step % train.save_every == 0:
                self.save("interval")
            if self.failure_reason:  # found by the read-back of a checkpoint
                break
            if self.controls.paused:
                self.pause()
                if self.controls.stop_reason:
                    break

        if self.interval.steps:
            self.log_metrics()  # a stop between logging steps still reports its last steps
        if self.failure_reason:  # a fault: save the last good state, then fail
            self.save("final", announce=False)
            return "failed"
        stopped = self.controls.stop_reason is not None
        if not stopped:
            self.set_state("checkpointing", "final checkpoint")
        self.save("final", announce=False)
        return "stopped" if stopped else "finished"

    def read_back(self) -> None:
        """Bring the per-step losses and gradient norms kept on the device since the last read to
        the host (the one host sync of a logging interval). Steps whose update was skipped for a
        non-finite value become ``error`` events now; too many in a row set ``failure_reason``."""
        rows = self.interval.read_back(self.accelerator)
        for step, (loss, grad_norm) in enumerate(rows, start=self.step - len(rows) + 1):
            if self.nonfinite.read(step, loss, grad_norm):
                self.interval.keep(loss, grad_norm)
                continue
            self.interval.skipped += 1
            if not self.failure_reason:
                self.failure_reason = self.nonfinite.too_many(step, checkpoint_name(self.step))

    def gate_baseline(self) -> None:
        """The in-run gate's reference: ``gate.baseline`` scored on this run's held-out windows
        (engine.checkpoint_eval), before the first step; without one, the run's first evaluation
        becomes it."""
        baseline = self.cfg.gate.baseline
        if baseline is None:  # the first evaluation (or, resumed, the one the checkpoint kept)
            return
        from engine.checkpoint_eval import gate_baseline_loss

        loss = gate_baseline_loss(baseline, self.data.val_tokens, self.data.val_mask, self.cfg.train, self.accelerator)
        self.gate.set_baseline(loss, f"baseline {baseline.name}")
        self.info(f"gate: baseline {baseline.name}: eval_loss {loss:.4f}")

    def run_gate(self) -> None:
        """The in-run gate at this step: the held-out loss (evaluated now unless it just was),
        judged against the reference; NO-GO stops the run (the final checkpoint is written)."""
        loss = self.last_eval[1] if self.last_eval and self.last_eval[0] == self.step else self.run_eval()
        decision = self.gate.check(self.step, loss)
        if decision is None:
            self.info(f"gate: step {self.step} eval_loss {loss:.4f} is the reference of the next gate steps")
            return
        self.info(f"gate at step {self.step}: {decision.line()}", level="info" if decision.go else "warning")
        if not decision.go and self.step < self.cfg.train.max_steps and not self.controls.stop_reason:
            self.controls.stop_reason = f"gate: {decision.line()}"
            self.set_state("stopping", self.controls.stop_reason)

    def run_eval(self) -> float:
        """Held-out loss now: an ``eval`` event, and the best-eval tracker (its time is not step
        time). Returns the loss."""
        t0, train = time.perf_counter(), self.cfg.train
        loss = evaluate(
            self.model,
            self.data.val_tokens,
            seq_len=train.seq_len,
            batch_size=train.micro_batch_size,
            n_batches=train.eval_batches,
            device=self.accelerator.device,
            accelerator=self.accelerator,
            val_mask=self.data.val_mask,
        )
        best = math.isfinite(loss) and (self.best_eval_loss is None or loss < self.best_eval_loss)
        if best:
            self.best_eval_loss, self.best_eval_step = loss, self.step
        if self.tensorboard is not None:
            self.tensorboard.write({"loss": loss, "perplexity": math.exp(min(loss, 700.0))}, self.step, prefix="eval")
        self.bus.emit(
            "eval",
            step=self.step,
            loss=loss,
            perplexity=math.exp(min(loss, 700.0)),
            best=best,
            best_loss=self.best_eval_loss,
            best_step=self.best_eval_step,
        )
        if self.main_process:
            print(
                f"eval step {self.step} | loss {loss:.4f} | ppl {math.exp(min(loss, 700.0)):.2f}"
                + (" | best" if best else ""),
                flush=True,
            )
        self.last_eval = (self.step, loss)
        if self.gate is not None:
            self.gate.observe(self.step, loss)
        self.interval.excluded_s += time.perf_counter() - t0
        return loss

    def step_time_estimate(self, last_step_s: float) -> float:
        """Seconds per step: the last one's, or the logging interval's mean when that is longer."""
        if self.interval.steps:
            return max(last_step_s, self.interval.busy_s(time.perf_counter()) / self.interval.steps)
        return last_step_s

    def check_limits(self, last_step_s: float) -> None:
        """Stop cleanly before ``train.budget_usd`` or ``train.max_hours`` would be passed: when
        the time so far, the steps until the next check and a checkpoint would go over."""
        train = self.cfg.train
        if self.controls.stop_reason or not (train.max_hours or train.budget_usd):
            return
        elapsed = self.elapsed_before + time.perf_counter() - self.t_start
        projected = (
            elapsed
            + self.control_every * self.step_time_estimate(last_step_s)
            + checkpoint_s_estimate(self.checkpoint_s, self.n_params)
        )
        self.controls.stop_reason = limit_reason(train, elapsed, projected)

    def train_step(self) -> tuple[torch.Tensor, bool]:
        """One optimizer step. Returns ``[loss, grad_norm]`` (a tensor on the device: the mean
        micro-batch loss and the norm before clipping) and whether the step went ahead: False
        only under ``train.nonfinite: stop`` when the values are not finite (no update applied,
        gradients cleared). Under ``skip`` a non-finite step is skipped on the device."""
        acc, model, train = self.accelerator, self.model, self.cfg.train
        accum = train.grad_accum_steps
        model.train()
        loss_sum = torch.zeros((), device=acc.device)
        for micro in range(accum):
            t0 = time.perf_counter()
            x_host, y_host = self.data.batches.take()
            x = x_host.to(acc.device, non_blocking=True)
            y = x if y_host is x_host else y_host.to(acc.device, non_blocking=True)
            self.interval.data_wait_s += time.perf_counter() - t0
            # Gradients are synchronised across processes on the last micro batch only.
            # A window of prompt tokens only (a fine-tuning mask) has no loss: it contributes zero
            # gradients, through the graph, so that every process still takes part in the reduction.
            learnt = y_host is x_host or bool((y_host[:, 1:] != -100).any())
            with acc.no_sync(model) if micro < accum - 1 else nullcontext():
                out = model(input_ids=x, labels=y if learnt else None, use_cache=False)
                loss = out.loss if learnt else out.logits.sum() * 0.0
                acc.backward(loss / accum)
            loss_sum += loss.detach()
        grad_norm = acc.clip_grad_norm_(model.parameters(), train.grad_clip or float("inf"))
        if grad_norm is None:  # a strategy that does not report it
            grad_norm = torch.zeros((), device=acc.device)
        elif hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor of partial norms
            grad_norm = grad_norm.full_tensor()
        values = torch.stack([loss_sum / accum, grad_norm.detach().float().to(acc.device)])
        return values, self.update(values)

    def update(self, values: torch.Tensor) -> bool:
        """The optimizer and scheduler step after the backward passes, ``train.nonfinite`` deciding
        what a non-finite ``values`` (loss, grad norm) does. Returns False only when the run must
        stop (``stop``: nothing applied, gradients cleared). Three cases:

        - not checked (``off``; or fp16, whose grad scaler skips inf steps itself): step;
        - ``skip`` with an optimizer that can skip on the device (fused AdamW's ``found_inf``): the
          update is skipped there, no host sync;
        - otherwise (``stop``, or ``skip`` without that optimizer): one host sync, then step, or
          skip the update (the schedule goes on), or stop."""
        train, acc = self.cfg.train, self.accelerator
        if train.nonfinite == "off" or train.precision == "fp16":
            self.optimizer.step()
        else:
            bad = ~torch.isfinite(values.sum())
            if acc.num_processes > 1:  # a NaN on any process skips or stops on all of them alike
                bad = acc.reduce(bad.float(), "sum") > 0
            if train.nonfinite == "skip" and self.skip_on_device:
                step_unless(self.optimizer, bad)
            elif bool(bad):  # the host sync
                self.optimizer.zero_grad(set_to_none=True)
                if train.nonfinite == "stop":
                    return False
                self.scheduler.step()
                return True
            else:
                self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def log_metrics(self) -> None:
        self.read_back()
        iv, n, now = self.interval, self.interval.steps, time.perf_counter()
        busy = iv.busy_s(now)
        step_time = busy / n
        tokens_per_s = self.tokens_per_step * n / busy
        mfu = self.flops_per_token * tokens_per_s / self.peak_flops_total if self.peak_flops_total else None
        elapsed = self.elapsed_before + now - self.t_start
        data_wait = iv.data_wait_s / n
        self.metrics.log(
            {
                "loss": iv.mean_loss(),
                "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": iv.mean_grad_norm(),
                "tokens_per_s": tokens_per_s,
                "tokens_seen": self.tokens_seen,
                "step_time_s": step_time,
                "elapsed_s": elapsed,
                "data_position": [self.data.batches.epoch, self.data.batches.index],
                "eta_s": (self.cfg.train.max_steps - self.step) * step_time,
                "mfu": mfu,
                "cost_usd": cost_usd(self.cfg.train, elapsed),
                "data_wait_s": data_wait,
                "compute_s": max(step_time - data_wait, 0.0),
                **({"skipped_steps": iv.skipped} if iv.skipped else {}),
            },
            step=self.step,
        )
        self.interval.reset()

    # --- commands, pause, checkpoints -----------------------------------------------------

    def poll_controls(self, last_step_s: float = 0.0, force: bool = False) -> None:
        """Take in commands and signals and check the limits. One process: every call. Several:
        only at the agreed steps (or ``force``, which every process must pass alike), where
        ``Controls.agree`` makes them all see the same requests, so none leaves the loop alone."""
        several = self.accelerator.num_processes > 1
        if several and not force and self.step < self.next_control_step:
            return
        before = self.controls.stop_reason
        self.controls.poll()
        self.check_limits(last_step_s)
        if several:
            self.control_every = self.controls.agree(self.accelerator, self.step_time_estimate(last_step_s))
            self.next_control_step = self.step + self.control_every
        if self.controls.stop_reason and not before:
            self.set_state("stopping", self.controls.stop_reason)

    def pause(self) -> None:
        t0, excluded = time.perf_counter(), self.interval.excluded_s
        self.set_state("paused")
        while self.controls.paused and not self.controls.stop_reason:
            time.sleep(PAUSE_POLL_S)
            self.poll_controls(force=True)
            if self.controls.checkpoint_requested and not self.controls.stop_reason:
                self.controls.checkpoint_requested = False
                self.save("command", resume_state="paused")
        if not self.controls.stop_reason:
            self.set_state("running")
        self.interval.excluded_s = excluded + time.perf_counter() - t0  # checkpoints inside counted once

    def state_dict(self, optimizer_state: dict) -> dict:
        """Everything besides the weights needed to continue the run (tensors and primitives: a
        checkpoint's ``training_state.pt``); ``optimizer_state`` is the full one, keyed by parameter
        name (``gather_state``). :meth:`load_state_dict` is its inverse."""
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "best_eval_loss": self.best_eval_loss,
            "best_eval_step": self.best_eval_step,
            "device_type": self.accelerator.device.type,
            "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            **({"grad_scaler": self.accelerator.scaler.state_dict()} if self.accelerator.scaler is not None else {}),
            "data": self.data.batches.state_dict(),
            "rng": rng_state(),
            "world_size": self.accelerator.num_processes,
            "nonfinite_skips": self.nonfinite.skips,
            **({"gate": self.gate.state_dict()} if self.gate is not None else {}),
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.t_start,
        }

    def load_state_dict(self, state: dict, weights: dict, source: Path) -> None:
        """Continue (built, not yet fitted) exactly where the checkpoint at ``source`` left off: its
        ``weights`` and training ``state`` (:meth:`state_dict`): optimizer, scheduler, data position,
        counters, and last the RNG states (after everything that draws from them). Raises
        ConfigError when they do not fit this run's model or data."""
        acc = self.accelerator
        try:
            restore_state(self.model, self.optimizer, weights, state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"{source}: the checkpoint's weights or optimizer state do not fit this run's model "
                f"({exc}); resume with the config the checkpoint was trained with"
            ) from None
        self.scheduler.load_state_dict(state["scheduler"])
        if acc.scaler is not None and "grad_scaler" in state:  # fp16: the loss scale goes on where it was
            acc.scaler.load_state_dict(state["grad_scaler"])
        data, batches = state["data"], self.data.batches
        if int(data.get("n_windows", batches.n_windows)) != batches.n_windows:
            raise ConfigError(
                f"{source}: the training data changed since the checkpoint "
                f"({data['n_windows']} sequences then, {batches.n_windows} now); "
                "an exact resume needs the same data and seq_len"
            )
        batches.load_state_dict(data)
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        best = state.get("best_eval_loss")
        self.best_eval_loss = None if best is None else float(best)
        best_step = state.get("best_eval_step")
        self.best_eval_step = None if best_step is None else int(best_step)
        if self.gate is not None:
            self.gate.load_state_dict(state.get("gate"))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.nonfinite.skips = int(state.get("nonfinite_skips", 0))
        saved_world = int(state.get("world_size", acc.num_processes))
        if saved_world != acc.num_processes:
            self.info(
                f"the checkpoint was written by {saved_world} process(es), this run has {acc.num_processes}: "
                "the data order continues, but the run is no longer bit-for-bit reproducible",
                level="warning",
            )
        set_rng_state(state["rng"])
        self.last_saved_step = self.step  # the checkpoint of this step exists already

    def save(self, reason: str, announce: bool = True, resume_state: str = "running") -> None:
        """Write a checkpoint of the current step (once per step) and emit a ``checkpoint`` event.

        A failed mid-run checkpoint is reported and training goes on; a failed final one fails the run."""
        if self.last_saved_step == self.step:
            return
        t0 = time.perf_counter()
        acc = self.accelerator
        if announce:
            self.set_state("checkpointing", reason)
        self.read_back()  # the skip count in the state is current
        model_state, optim_state = gather_state(self.model, self.optimizer)  # every process takes part
        state = self.state_dict(optim_state)
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.checkpoints.write(
                self.step,
                acc.unwrap_model(self.model),
                self.data.tokenizer,
                state,
                model_state,
                reason,
                keep={self.step, self.best_eval_step},
                started=t0,
            )
        self.checkpoint_s.append(time.perf_counter() - t0)
        self.last_saved_step = self.step  # on every process, so they all skip or save alike
        acc.wait_for_everyone()
        if announce:
            self.set_state(resume_state)
        self.interval.excluded_s += time.perf_counter() - t0
