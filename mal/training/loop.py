"""The training loop: one stage (warm-up or stage 2) of the two-stage MAL paradigm.

``train(cfg)`` builds the model, loads the warm-up checkpoint (stage 2) or a run's own ``last.pt``
(resume), builds the loss recipe *after* the weights are in place (the ``frozen`` MAL variant snapshots the
model when its loss is built), then steps through ``cfg.steps`` updates of the global schedule.

Order of building (it matters):

1. model from ``cfg.model``; stage 2 loads the warm-up weights;
2. ``freeze_encoder`` freezes ``model.encoder``; the objective (``mal.losses.build_objective``): ``frozen``
   snapshots the warm-up model, ``frozen-fe`` sets ``requires_grad=False`` on ``model.encoder``;
3. a resumed run loads its own latest weights over the model (the frozen snapshot stays the warm-up's);
4. the optimiser over *all* parameters, in the same single param group as the warm-up, so the warm-up's
   optimiser state loads into every stage-2 branch. Frozen parameters never get a gradient (``grad`` stays
   ``None``), and torch's Adam/AdamW skip such parameters entirely: no update, no weight decay, state kept;
5. DDP (which only synchronises parameters that require grad) and ``torch.compile`` wrap the forward.

Nothing in ``run_dir`` changes until all of that succeeded. A fresh start (or an overwrite) then moves an
earlier run's files into ``run_dir/.previous-run/`` and deletes them only once the new run's first checkpoint
has landed; if the new run fails before that, they are moved back (and a run killed before that gets them
back on its next start).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

import mal
from mal.config import ConfigError
from mal.device import resolve_device
from mal.io import atomic_write_json, remove_orphan_temps
from mal.losses._frozen import freeze
from mal.training.checkpoint import file_sha256, read_training_checkpoint, save_training_checkpoint, set_rng_state
from mal.training.config import HIGHER_IS_BETTER, TrainConfig
from mal.training.data import batch_at, training_loader, validation_items
from mal.training.distributed import DistContext, setup
from mal.training.history import HistoryWriter, read_rows
from mal.training.schedule import StepSchedule
from mal.training.validate import score_items, validate

log = logging.getLogger("mal.train")

IfExists = Literal["error", "resume", "overwrite"]

# Parameter groups of the weight-change log ("" = every parameter, then the SEModel halves) → the logged column.
WEIGHT_CHANGE = {"": "weight_change", "encoder": "weight_change_encoder", "decoder": "weight_change_decoder"}
# Config fields that may differ between a run and its resumption: they change how, not what, is computed.
# run_dir and init_checkpoint are where things are, not what they hold: a moved run folder still resumes (the
# warm-up's content is checked by its hash instead).
RESUMABLE_CHANGES = {"device", "threads", "progress", "data.num_workers", "log_every", "compile"}
LOCATION_FIELDS = {"run_dir", "init_checkpoint"}
# What a run writes into its run_dir; an overwrite moves these into SET_ASIDE until its first checkpoint lands.
RUN_ARTEFACTS = ("checkpoints", "history.jsonl", "summary.json", "figures", "config.yaml")
SET_ASIDE = ".previous-run"


class NonFiniteLossError(FloatingPointError):
    """A loss term or the gradient became NaN/inf; no checkpoint was written for that step."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run directory.
        step: global step reached (number of updates since the warm-up began).
        summary: the content of ``summary.json`` (empty on DDP ranks other than 0).
        last_checkpoint: ``checkpoints/last.pt``.
        best_checkpoint: ``checkpoints/best.pt`` (None when validation never ran).
        history: ``history.jsonl``.
        model: the trained model (the plain module, in eval mode, on the training device).
    """

    run_dir: Path
    step: int
    summary: dict[str, Any]
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: Path
    model: nn.Module


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam/AdamW over every parameter of ``model`` in one group (see the module docstring for why)."""
    o = cfg.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def _flat_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        name = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict) and k != "hparams":
            out += _flat_diff(va, vb, f"{name}.")
        elif va != vb:
            out.append(name)
    return out


def _mal_stat_modules(objective: nn.Module) -> list[nn.Module]:
    """Loss modules that publish per-step statistics (``last_stats``, e.g. MAL's collapse monitor)."""
    return [m for m in objective.modules() if isinstance(getattr(m, "last_stats", None), dict)]


class _Meter:
    """Means of the logged scalars over the current log window."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.count) for k, v in self.sums.items()}


class Trainer:
    """Holds the state of one training stage; :meth:`run` executes it. Use :func:`train`."""

    def __init__(self, cfg: TrainConfig, dctx: DistContext, device: torch.device, if_exists: IfExists) -> None:
        self.cfg = cfg
        self.dctx = dctx
        self.device = device
        self.run_dir = Path(cfg.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.last_path = self.ckpt_dir / "last.pt"
        self.best_path = self.ckpt_dir / "best.pt"
        self.history = HistoryWriter(self.run_dir / "history.jsonl")
        self.config_dict = cfg.to_dict()

        resume_ckpt = self._check_run_dir(if_exists)
        self.resumed = resume_ckpt is not None

        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        _seed_everything(cfg.seed)

        self.model = mal.models.build(cfg.model.name, **cfg.model.hparams)
        init_ckpt = None
        self.init_sha256: str | None = None
        if cfg.stage == "stage2":
            init_ckpt = read_training_checkpoint(cfg.init_checkpoint)
            self.init_sha256 = file_sha256(cfg.init_checkpoint)
            self._check_same_model(init_ckpt, cfg.init_checkpoint)
            if resume_ckpt is not None:
                self._check_same_init(resume_ckpt)
            self.model.load_state_dict(init_ckpt["model_state"])
        self.model.to(device)
        # The weights this stage starts from (a resumed run rebuilds the same ones above: the warm-up's checkpoint
        # or the seeded initialisation), for the relative weight change ‖θ − θ_start‖ / ‖θ_start‖ in the logs.
        self.start_weights = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        if cfg.freeze_encoder:
            # The same freeze as MAL frozen-fe (no gradient, modes pinned), so the two differ in the loss alone.
            freeze(self.model.encoder)
        from mal.losses import build_objective

        self.objective = build_objective(cfg.loss, self.model).to(device)
        # The recipe's weights: every calibration starts from them, so a repeated one rescales the configured loss
        # rather than the previous calibration's output (which would shrink the weights geometrically).
        self.configured_weights = dict(self.objective.weights)
        self.stat_modules = _mal_stat_modules(self.objective)

        self.optimizer = build_optimizer(cfg, self.model)
        self.amp_enabled = cfg.amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_enabled and self.amp_dtype == torch.float16)

        # Where this stage starts on the global step axis, and the schedule's length.
        if init_ckpt is not None:
            tr = init_ckpt["training"]
            self.stage_start = int(tr["step"])
            total = cfg.optim.total_steps or int(tr["scheduler"]["total_steps"])
        else:
            self.stage_start = 0
            total = cfg.optim.total_steps or cfg.steps
        self.end_step = self.stage_start + cfg.steps
        self.schedule = StepSchedule(self.optimizer, cfg.optim, total, step=self.stage_start)
        if cfg.optim.schedule == "cosine" and self.end_step > total:
            raise ConfigError(
                f"the cosine schedule ends at global step {total} but this {cfg.stage} run ends at step "
                f"{self.end_step}: the learning rate would sit at its floor for {self.end_step - total} steps. "
                "Give the warm-up optim.total_steps = warm-up steps + stage-2 steps (one cosine over both "
                "stages), or set optim.total_steps here to stretch it deliberately."
            )

        self.step = self.stage_start
        self.skipped = 0
        self.train_seconds = 0.0
        self.best: dict[str, Any] = {"metric": cfg.best_metric, "value": None, "step": None}
        # RNG states are restored right before the first step (see run()), after everything that may draw.
        self._pending_rng: dict[str, Any] | None = None
        if init_ckpt is not None:
            self._load_optimizer_state(init_ckpt["training"])
            self._pending_rng = init_ckpt["training"]["rng"]
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
        elif cfg.calibrate:
            self._calibrate()

        fwd: nn.Module = self.model
        if dctx.enabled:
            fwd = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            fwd = torch.compile(fwd)
        self.forward_model = fwd

    # ----------------------------------------------------------------------------------------------- setup
    def _check_run_dir(self, if_exists: IfExists) -> dict[str, Any] | None:
        """The checkpoint to resume from, or None for a fresh start; changes nothing but leftovers of a kill."""
        if self.dctx.is_main:
            self._recover_set_aside()
            orphans = remove_orphan_temps(self.run_dir) + remove_orphan_temps(self.ckpt_dir)
            if orphans:
                log.warning("removed %d temporary file(s) left by a killed write: %s", len(orphans), orphans)
        self.dctx.barrier()
        exists = self.last_path.is_file()
        if exists and if_exists == "error":
            raise FileExistsError(
                f"{self.run_dir} already holds a training run ({self.last_path}); resume it "
                "(--resume / if_exists='resume'), overwrite it (--overwrite / if_exists='overwrite') or choose "
                "another run_dir"
            )
        if exists and if_exists == "resume":
            ckpt = read_training_checkpoint(self.last_path)
            ignored = RESUMABLE_CHANGES | LOCATION_FIELDS
            changed = [k for k in _flat_diff(ckpt["config"] or {}, self.config_dict) if k not in ignored]
            if changed:
                raise ConfigError(
                    f"cannot resume {self.run_dir}: the config differs from the checkpoint's in {changed}; "
                    "resume with the same config or start a new run_dir"
                )
            return ckpt
        return None

    def _start_fresh(self) -> None:
        """Set an earlier run's files aside (see the module docstring) and write this run's config."""
        if self.dctx.is_main:
            # Whatever an earlier run left here (an overwritten run, or the history of one killed before its
            # first checkpoint) would otherwise mix with this run's rows.
            present = [name for name in RUN_ARTEFACTS if (self.run_dir / name).exists()]
            if present:
                aside = self.run_dir / SET_ASIDE
                aside.mkdir(parents=True)
                for name in present:
                    os.replace(self.run_dir / name, aside / name)
                log.info("moved the previous run's %s to %s until the first checkpoint", present, aside)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.run_dir / "config.yaml")
        self.dctx.barrier()

    def _discard_set_aside(self) -> None:
        aside = self.run_dir / SET_ASIDE
        if aside.is_dir():
            shutil.rmtree(aside)

    def _restore_set_aside(self) -> None:
        """Put the previous run back in place of this one, which ended before its first checkpoint."""
        aside = self.run_dir / SET_ASIDE
        if not aside.is_dir():
            return
        for name in RUN_ARTEFACTS:
            target = self.run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if (aside / name).exists():
                os.replace(aside / name, target)
        aside.rmdir()
        log.warning("this run ended before its first checkpoint: the previous run in %s is back", self.run_dir)

    def _recover_set_aside(self) -> None:
        """After a kill: the new run's checkpoint landed → drop the old run, otherwise → bring it back."""
        if (self.run_dir / SET_ASIDE).is_dir():
            if self.last_path.is_file():
                self._discard_set_aside()
            else:
                self._restore_set_aside()

    def _check_same_init(self, resume_ckpt: dict[str, Any]) -> None:
        recorded = resume_ckpt["training"].get("init_sha256")
        if recorded != self.init_sha256:
            raise ConfigError(
                f"cannot resume {self.run_dir}: its warm-up checkpoint {self.cfg.init_checkpoint} is not the file "
                f"this run started from (SHA-256 {self.init_sha256[:12]}…, the run recorded "
                f"{str(recorded)[:12]}…). The frozen MAL target is rebuilt from it, so resuming would change the "
                "result: restore the original warm-up checkpoint or start a new run_dir"
            )

    def _check_same_model(self, ckpt: dict[str, Any], where: str) -> None:
        if ckpt["model_class"] != self.model.name or ckpt["hparams"] != self.model.hparams:
            raise ConfigError(
                f"{where} holds model {ckpt['model_class']!r} {ckpt['hparams']} but this config builds "
                f"{self.model.name!r} {self.model.hparams}; stage 2 must use the warm-up's model config"
            )

    def _load_optimizer_state(self, tr: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(tr["optimizer"])
        # load_state_dict brings back the saved betas / weight decay; this stage's config decides them.
        for group in self.optimizer.param_groups:
            group["betas"] = tuple(self.cfg.optim.betas)
            group["weight_decay"] = self.cfg.optim.weight_decay
        if tr.get("grad_scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(tr["grad_scaler"])

    def _restore(self, ckpt: dict[str, Any]) -> None:
        tr = ckpt["training"]
        self.model.load_state_dict(ckpt["model_state"])
        self._load_optimizer_state(tr)
        self.schedule.load_state_dict(tr["scheduler"])
        self.step = int(tr["step"])
        self.stage_start = int(tr["stage_start"])
        self.end_step = self.stage_start + self.cfg.steps
        self.skipped = int(tr["skipped_steps"])
        self.train_seconds = float(tr["train_seconds"])
        self.best = dict(tr["best"])
        for name, weight in tr["loss_weights"].items():
            self.objective.set_weight(name, weight)  # calibrated weights are part of the run's state
        self._pending_rng = tr["rng"]
        if self.dctx.is_main:
            self.history.truncate_after(self.step)
            log.info("resumed %s at global step %d", self.run_dir, self.step)

    def _calibrate(self) -> None:
        """Scale the terms named in ``cfg.calibrate`` on the batch of the coming step (the same on every rank):
        the stage's first, then every ``cfg.calibrate_every`` steps.

        ``calibrate_by="grad-norm"`` sets every weight (see :func:`mal.losses.gradient_matched_weights`);
        ``"value"`` sets the calibrated terms' weights only.
        """
        from mal.losses import calibrate_weight, gradient_matched_weights

        for term, weight in self.configured_weights.items():
            self.objective.set_weight(term, weight)
        noisy, clean = batch_at(self.cfg.data, self.cfg.seed, self.step)
        noisy, clean = noisy.to(self.device), clean.to(self.device)
        if self.cfg.calibrate_by == "grad-norm":
            weights = gradient_matched_weights(
                self.objective, self.model, noisy, clean, self.cfg.calibrate, autocast=self.autocast
            )
        else:
            with torch.no_grad(), self.autocast():
                estimate = self.model(noisy).float()
            weights = {
                term: calibrate_weight(self.objective, term, estimate, clean, ratio=ratio)
                for term, ratio in self.cfg.calibrate.items()
            }
        for term, weight in weights.items():
            self.objective.set_weight(term, weight)
        if self.dctx.is_main and self.step == self.stage_start:
            log.info(
                "calibrated the loss weights by %s on the batch of global step %d (ratios %s): %s",
                self.cfg.calibrate_by,
                self.step,
                self.cfg.calibrate,
                {term: f"{w:.4g}" for term, w in weights.items()},
            )

    # ------------------------------------------------------------------------------------------- helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _save(self, path: Path) -> None:
        save_training_checkpoint(
            path,
            self.model,
            self.config_dict,
            stage=self.cfg.stage,
            step=self.step,
            stage_start=self.stage_start,
            stage_step=self.step - self.stage_start,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(),
            grad_scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            best=self.best,
            loss_weights=dict(self.objective.weights),
            skipped_steps=self.skipped,
            train_seconds=self.train_seconds,
            init_sha256=self.init_sha256,
        )

    def _non_finite(self, what: str, detail: str) -> None:
        """Apply ``nan_policy`` to a non-finite loss or gradient at ``self.step``."""
        where = f"global step {self.step} ({self.cfg.stage} step {self.step - self.stage_start + 1}/{self.cfg.steps})"
        if self.cfg.nan_policy == "stop":
            raise NonFiniteLossError(
                f"{where}: {what} is not finite ({detail}). No checkpoint was written for this step (the "
                f"latest one, if any, is {self.last_path}). Lower optim.lr, tighten optim.grad_clip, or set "
                "nan_policy='skip' to skip such steps."
            )
        self.skipped += 1
        log.warning("%s: %s is not finite (%s); step skipped (%d so far)", where, what, detail, self.skipped)
        if self.skipped > self.cfg.max_skipped_steps:
            raise NonFiniteLossError(
                f"{where}: {self.skipped} steps skipped for non-finite loss/gradient, more than "
                f"max_skipped_steps={self.cfg.max_skipped_steps}; the last was: {what} ({detail})"
            )

    @torch.no_grad()
    def weight_change(self) -> dict[str, float]:
        """``‖θ − θ_start‖ / ‖θ_start‖`` over this stage: all parameters, the encoder's and the decoder's.

        How far a stage moved the model is the dose that the loss comparison must hold equal (issue 13: a
        100-step stage 2 moved the weights by about 0.3 %, too little for any loss to show). The groups follow
        the SEModel contract (every parameter is ``encoder.*`` or ``decoder.*``).
        """
        sums = {group: torch.zeros(2, dtype=torch.float64, device=self.device) for group in WEIGHT_CHANGE}
        for name, p in self.model.named_parameters():
            start = self.start_weights[name]
            moved = torch.stack([(p - start).double().square().sum(), start.double().square().sum()])
            sums[""] += moved
            group = name.split(".", 1)[0]
            if group in sums:
                sums[group] += moved
        out = {}
        for group, total in sums.items():
            moved, start = total.tolist()
            out[WEIGHT_CHANGE[group]] = math.sqrt(moved / start) if start else math.nan
        return out

    def _loss_stats(self) -> dict[str, float]:
        stats: dict[str, float] = {}
        for m in self.stat_modules:
            for k, v in m.last_stats.items():
                stats[k] = float(v)
        return stats

    # ------------------------------------------------------------------------------------------ the step
    def train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, float] | None:
        """One update; returns the logged scalars, or None when the step was skipped (nan_policy='skip')."""
        lr = self.schedule.apply()
        with self.autocast():
            estimate = self.forward_model(noisy)
            # Loss in float32 from the estimate on; autocast still speeds up the MAL / deep-feature networks.
            total, terms = self.objective(estimate.float(), clean)
        terms = {k: v for k, v in terms.items() if k != "total"}  # the total is logged as "loss"
        bad_terms = [k for k, v in terms.items() if not math.isfinite(float(v))]
        loss_bad = not bool(torch.isfinite(total.detach()).item()) or bool(bad_terms)
        # Every rank must take the same branch, or the next collective would hang.
        if self.dctx.all_max(float(loss_bad), self.device) > 0:
            self.optimizer.zero_grad(set_to_none=True)
            detail = ", ".join(f"{k}={terms[k]}" for k in bad_terms) or f"total={float(total.detach())}"
            self._non_finite("the loss" if not bad_terms else f"loss term {bad_terms[0]!r}", detail)
            return None
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if params else 0.0
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            # Gradients are all-reduced already, so every rank sees the same norm.
            self.optimizer.zero_grad(set_to_none=True)
            self._non_finite("the gradient norm", f"{grad_norm} with finite loss terms {dict(terms)}")
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        # Same names as validation rows: "loss" (the weighted total) and "loss_<term>" (each unweighted term).
        return {
            "loss": float(total.detach()),
            **{f"loss_{k}": float(v) for k, v in terms.items()},
            **self._loss_stats(),
            "lr": lr,
            "grad_norm": grad_norm,
            **({f"weight_{k}": w for k, w in self.objective.weights.items() if w > 0} if self.cfg.calibrate else {}),
        }

    # ------------------------------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        """Train to ``end_step``, write ``summary.json``; a fresh run first sets an earlier one aside."""
        if not self.resumed:
            self._start_fresh()
        try:
            return self._run()
        except BaseException:
            if self.dctx.is_main:
                self._restore_set_aside()  # a no-op once this run's first checkpoint has landed
            raise

    def _run(self) -> TrainResult:
        cfg, dctx = self.cfg, self.dctx
        if self.resumed and self.step >= self.end_step:
            # Resuming a finished run: keep its summary (rebuild it only if the kill came before it was written).
            log.info("%s already finished at global step %d; nothing to train", self.run_dir, self.step)
            return self._result(self._finished_summary() if dctx.is_main else {})
        wall_start = time.perf_counter()
        valid_items = validation_items(cfg.data) if dctx.is_main else []
        noisy_scores = self._noisy_scores(valid_items) if dctx.is_main else {}
        loader = training_loader(
            cfg.data,
            cfg.seed,
            self.step,
            self.end_step,
            rank=dctx.rank,
            world_size=dctx.world_size,
            pin_memory=self.device.type == "cuda",
        )
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.steps,
            initial=self.step - self.stage_start,
            desc=f"{cfg.stage} {self.run_dir.name}",
            disable=not (cfg.progress and dctx.is_main),
            dynamic_ncols=True,
        )
        meter = _Meter()
        last_valid: dict[str, float] = {}
        last_train: dict[str, float] = {}
        samples_per_step = cfg.data.batch_size * dctx.world_size
        self.model.train()
        batches = iter(loader)
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
        window_start = time.perf_counter()
        window_steps = 0
        for noisy, clean, *_ in batches:
            local = self.step - self.stage_start
            if cfg.calibrate and cfg.calibrate_every and local and local % cfg.calibrate_every == 0:
                self._calibrate()  # before the step, so a run resumed at this step recalibrates the same way
            noisy = noisy.to(self.device, non_blocking=True)
            clean = clean.to(self.device, non_blocking=True)
            values = self.train_step(noisy, clean)
            self.schedule.step()
            self.step += 1
            window_steps += 1
            bar.update()
            if values is not None:
                meter.add(values)
            local = self.step - self.stage_start
            at_end = self.step == self.end_step
            if local % cfg.log_every == 0 or at_end:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed = time.perf_counter() - window_start
                self.train_seconds += elapsed
                step_time = elapsed / max(1, window_steps)
                last_train = meter.means()
                row = {
                    "step": self.step,
                    "stage": cfg.stage,
                    "kind": "train",
                    **last_train,
                    **self.weight_change(),
                    "step_time_s": step_time,
                    "samples_per_s": samples_per_step / step_time if step_time > 0 else math.nan,
                    "skipped_steps": self.skipped,
                }
                if dctx.is_main:
                    self.history.write(row)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in last_train.items() if k not in ("grad_norm",)})
                meter = _Meter()
                window_steps = 0
                window_start = time.perf_counter()
            do_valid = at_end or (cfg.valid_every > 0 and local % cfg.valid_every == 0)
            do_ckpt = at_end or (cfg.checkpoint_every > 0 and local % cfg.checkpoint_every == 0)
            if dctx.is_main and (do_valid or do_ckpt):
                pause = time.perf_counter()
                if do_valid and valid_items:
                    last_valid = self._validate(valid_items)
                if do_ckpt:
                    self._save(self.last_path)
                    self._discard_set_aside()
                window_start += time.perf_counter() - pause  # validation and checkpoints are not step time
        bar.close()
        in_sync = dctx.replicas_identical(self.model, self.device)
        if not in_sync:
            raise RuntimeError(f"DDP replicas diverged: ranks hold different weights after global step {self.step}")
        wall = time.perf_counter() - wall_start
        summary: dict[str, Any] = {}
        if dctx.is_main:
            summary = self._summary(last_train, last_valid, noisy_scores, wall)
            atomic_write_json(self.run_dir / "summary.json", summary)
        return self._result(summary)

    def _result(self, summary: dict[str, Any]) -> TrainResult:
        self.model.eval()
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            summary=summary,
            last_checkpoint=self.last_path,
            best_checkpoint=self.best_path if self.best_path.is_file() else None,
            history=self.history.path,
            model=self.model,
        )

    def _finished_summary(self) -> dict[str, Any]:
        """The summary a finished run wrote; rebuilt from its history when missing or not for this step."""
        path = self.run_dir / "summary.json"
        try:
            summary = json.loads(path.read_text())
            if summary.get("global_step") == self.step:
                return summary
        except (OSError, ValueError):
            pass
        noisy = self._noisy_scores(validation_items(self.cfg.data))
        train, valid = self._final_rows_from_history()
        summary = self._summary(train, valid, noisy, wall=math.nan)  # the wall time of the lost process is unknown
        atomic_write_json(path, summary)
        return summary

    def _final_rows_from_history(self) -> tuple[dict[str, float], dict[str, float]]:
        """The train means and validation scores logged at ``self.step`` (what the summary reports)."""
        # Not train means: bookkeeping, and the weight change, which the summary reports on its own (_summary).
        bookkeeping = {
            "step",
            "stage",
            "kind",
            "step_time_s",
            "samples_per_s",
            "skipped_steps",
            *WEIGHT_CHANGE.values(),
        }
        rows = [r for r in read_rows(self.history.path) if r.get("step") == self.step]
        found: dict[str, dict[str, float]] = {"train": {}, "valid": {}}
        for row in rows:
            if row.get("kind") in found:
                found[row["kind"]] = {k: (math.nan if v is None else v) for k, v in row.items() if k not in bookkeeping}
        return found["train"], found["valid"]

    def _noisy_scores(self, items: list[tuple[torch.Tensor, torch.Tensor, str]]) -> dict[str, float]:
        """The unprocessed input's metrics on the validation subset: the bar every model must clear."""
        if not items:
            return {}
        return score_items([c for _, c, _ in items], [n for n, _, _ in items], self.cfg.valid_metrics)

    def _validate(self, items: list[tuple[torch.Tensor, torch.Tensor, str]]) -> dict[str, float]:
        scores = validate(self.model, self.objective, items, self.device, self.cfg.valid_metrics, self.autocast)
        self.history.write({"step": self.step, "stage": self.cfg.stage, "kind": "valid", **scores})
        metric = self.cfg.best_metric
        value = scores.get(metric, math.nan)
        if not math.isfinite(value):
            log.warning("validation %s is not finite at step %d; best.pt not updated", metric, self.step)
            return scores
        better = metric in HIGHER_IS_BETTER
        best = self.best["value"]
        if best is None or (value > best if better else value < best):
            self.best = {"metric": metric, "value": value, "step": self.step}
            self._save(self.best_path)
        return scores

    def _summary(
        self, train: dict[str, float], valid: dict[str, float], noisy: dict[str, float], wall: float
    ) -> dict[str, Any]:
        done = self.step - self.stage_start
        step_time = self.train_seconds / max(1, done)
        return {
            "run_dir": str(self.run_dir),
            "stage": self.cfg.stage,
            "model": self.cfg.model.name,
            "params": sum(p.numel() for p in self.model.parameters()),
            "init_checkpoint": self.cfg.init_checkpoint or None,
            "init_sha256": self.init_sha256,
            "steps": done,
            "start_step": self.stage_start,
            "global_step": self.step,
            "skipped_steps": self.skipped,
            "device": str(self.device),
            "world_size": self.dctx.world_size,  # DDP replicas are checked bit-identical at the end
            "batch_size": self.cfg.data.batch_size,
            "wall_seconds": wall,
            "train_seconds": self.train_seconds,
            "step_time_s": step_time,
            "samples_per_s": self.cfg.data.batch_size * self.dctx.world_size / step_time if step_time else math.nan,
            "train": train,
            "valid": valid,
            "noisy": noisy,
            "best": self.best,
            "loss_weights": dict(self.objective.weights),
            # The step-size columns of a results table: the stage's mean gradient norm (before clipping) and how
            # far the stage moved the weights.
            "grad_norm_mean": self._stage_mean("grad_norm"),
            **self.weight_change(),
            "mal_version": mal.__version__,
        }

    def _stage_mean(self, column: str) -> float:
        """Mean of a train column over this stage's steps, from the history (which a resumed run keeps)."""
        rows = [r for r in read_rows(self.history.path) if r["kind"] == "train" and r["step"] > self.stage_start]
        total, steps, previous = 0.0, 0, self.stage_start
        for row in rows:
            # Each row is the mean over the steps since the previous row (log_every, fewer at the end).
            value = row.get(column)
            if value is not None:
                total += value * (row["step"] - previous)
                steps += row["step"] - previous
            previous = row["step"]
        return total / steps if steps else math.nan


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code draws from the global RNG
    torch.manual_seed(seed)


def train(cfg: TrainConfig, if_exists: IfExists = "error") -> TrainResult:
    """Run one training stage described by ``cfg``; see :mod:`mal.training.loop`.

    Args:
        cfg: the stage's config.
        if_exists: what to do when ``cfg.run_dir`` already holds a run: ``"error"``, ``"resume"`` (continue
            from ``checkpoints/last.pt``; a run that was never started starts fresh) or ``"overwrite"``.
    Returns:
        :class:`TrainResult`. Under torchrun every rank calls this; only rank 0 writes files.
    Raises:
        NonFiniteLossError: a loss term or gradient became NaN/inf (``nan_policy="stop"``).
    """
    device_type = resolve_device(cfg.device).type
    dctx = setup(device_type)
    try:
        device = resolve_device(cfg.device, dctx.local_rank)
        return Trainer(cfg, dctx, device, if_exists).run()
    finally:
        dctx.close()
