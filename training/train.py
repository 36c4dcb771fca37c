"""Training: `boneage train --data DIR --recipe NAME --out DIR`.

Deterministic under a seed, resumable from `last.pt`, selects the best epoch by
validation MAE (a non-finite one never counts; a run with no finite epoch fails rather than
saving a diverged model), and reports metrics on the held-out test split only.
"""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from core.atomic import save_atomic
from core.errors import UserFacingError
from core.settings import Settings
from training.augment import augment, to_float
from training.balanced_mse import balanced_mse
from training.loader import device_batches
from training.cache import load_image_array
from training.inference import predict_months
from training.model import build_model, default_device, save_checkpoint
from training.precision import Precision
from training.preprocess import Preprocessing
from training.recalibration import apply as recalibrated, fit as fit_recalibration
from training.recipes import Recipe, get_recipe
from training.rsna import Record, load_records
from training.sample_weights import sample_weights
from training.selection import is_new_best
from training.split import stratified_split

EMA_DECAY = 0.998
WARMUP_FRACTION = 0.05
PRECISE_BN_IMAGES = 256
PROGRESSIVE_FULL_AT = 0.75  # progressive resizing reaches the full size at this share of the schedule


class TrainingDiverged(UserFacingError):
    """No epoch produced a finite validation error: there is no model worth saving."""


class TrainingStopped(Exception):
    """Raised by a callback to stop training at a batch boundary (e.g. a cancel request).
    last.pt keeps the last finished epoch, so the run can be resumed."""


class TrainingCallback:
    """Hooks the training loop calls (the service's training jobs write progress through
    them). on_batch may raise TrainingStopped; the others only observe."""

    def on_start(self, *, epoch: int, total_epochs: int, history: list[dict]) -> None:
        """Before the first batch; `epoch` epochs are already done when resuming."""

    def on_batch(self, *, epoch: int, batch: int, batches: int) -> None:
        """Before each batch of epoch `epoch` (1-based)."""

    def on_epoch(self, entry: dict, *, total_epochs: int) -> None:
        """After an epoch ended and last.pt was saved; entry is its history row."""


def recipe_loss(recipe: Recipe, model, images: torch.Tensor, male: torch.Tensor, ages: torch.Tensor,
                weights: torch.Tensor | None = None, prior_ages: torch.Tensor | None = None) -> torch.Tensor:
    """The recipe's training loss: MSE on raw months (the seed), smooth L1 on the z-scored age, or
    balanced MSE on the z-scored age against `prior_ages` (every training age, in months);
    `weights` (one per image, mean ~1) re-weight the images (the recipe's sample_weighting)."""
    if recipe.loss == "mse_months":
        per_image = F.mse_loss(model(images, male), ages, reduction="none")
    elif recipe.loss == "smooth_l1_z":
        z_target = (ages - model.target_mean) / model.target_std
        per_image = F.smooth_l1_loss(model.standardised(images, male), z_target, reduction="none")
    elif recipe.loss == "balanced_mse_z":
        if prior_ages is None:
            raise ValueError("the balanced_mse_z loss needs the training ages (prior_ages)")
        z_target = (ages - model.target_mean) / model.target_std
        z_prior = (prior_ages - model.target_mean) / model.target_std
        per_image = balanced_mse(model.standardised(images, male), z_target, z_prior, recipe.balanced_mse_sigma)
    else:
        raise ValueError(f"unknown loss {recipe.loss!r}")
    return per_image.mean() if weights is None else (per_image * weights).mean()


def _ema_with_warmup(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
    """EMA whose decay ramps up from 0, so that short runs are not dominated by the
    random initial weights (and their BatchNorm statistics)."""
    decay = min(EMA_DECAY, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
    return decay * averaged + (1.0 - decay) * current


class TrainingData:
    """The records of one dataset, its split and the cached image squares."""

    def __init__(self, records: list[Record], split: dict[str, list[str]], images: np.ndarray):
        self.records = records
        self.split = split
        self.images = images
        self.ages = np.array([r.bone_age_months for r in records], dtype=np.float32)
        self.male = np.array([r.male for r in records], dtype=np.float32)
        position = {r.id: i for i, r in enumerate(records)}
        self.indices = {name: np.array([position[i] for i in ids], dtype=np.int64) for name, ids in split.items()}

    @classmethod
    def prepare(cls, data_dir, recipe: Recipe, *, split_seed: int = 0, limit: int | None = None,
                split: dict[str, list[str]] | None = None, progress: bool = True, cache_dir=None) -> "TrainingData":
        records = sorted(load_records(data_dir), key=lambda r: r.id)
        if limit is not None and limit < len(records):
            chosen = np.random.default_rng(split_seed).choice(len(records), size=limit, replace=False)
            records = [records[i] for i in sorted(chosen)]
        split = split or stratified_split(records, seed=split_seed)
        images = load_image_array(records, Preprocessing.from_recipe(recipe), cache_dir, progress)
        return cls(records, split, images)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.indices[name]
        return self.images[idx], self.male[idx], self.ages[idx]


def train(
    data_dir,
    recipe: str | Recipe,
    out_dir,
    *,
    seed: int = 0,
    epochs: int | None = None,
    image_size: int | None = None,
    time_budget_s: float | None = None,
    progress: bool = True,
    limit: int | None = None,
    init: str | None = None,
    resume: bool = False,
    split_seed: int = 0,
    split: dict[str, list[str]] | None = None,
    cache_dir=None,
    threads: int | None = None,
    callback: TrainingCallback | None = None,
) -> Path:
    """Train, write out_dir/model.pt (+ model.json) and return its path. `callback`
    (a TrainingCallback) sees each batch and epoch and may stop the run; `split` (ids per
    part, e.g. training.split.cross_fitting_split) replaces the split seeded by split_seed."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    recipe = recipe.with_overrides(epochs=epochs, image_size=image_size, init=init)
    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = TrainingData.prepare(data_dir, recipe, split_seed=split_seed, limit=limit, progress=progress,
                                split=split, cache_dir=cache_dir)
    settings = Settings.from_env()
    precision = Precision.for_training(default_device(), settings.train_precision, settings.channels_last)
    trainer = Trainer(recipe, data, out_dir, seed=seed, time_budget_s=time_budget_s, progress=progress,
                      data_dir=str(Path(data_dir).resolve()), callback=callback, precision=precision)
    if resume and (out_dir / "last.pt").is_file():
        trainer.restore(out_dir / "last.pt")
    return trainer.run()


def calibrate_interval(model, data: TrainingData, recipe: Recipe, device=None) -> dict | None:
    """Split-conformal interval calibration on the validation residuals of `model`, predicted as
    the Predictor will (with the recipe's TTA and recalibration; in float32, where a Predictor on a
    bfloat16 CPU moves a prediction by under a month), for both sexes and each apart;
    None when too few. The training split's residuals fill in age bands with few validation
    studies. What training stores in the checkpoint, and what the benchmarks recalibrate with."""
    from training.intervals import calibrate

    images, male, ages = data.part("val")
    if len(images) == 0:
        return None
    predictions = predict_months(model, images, male, tta=recipe.tta, device=device)
    train_images, train_male, train_ages = data.part("train")
    train_predictions = predict_months(model, train_images, train_male, tta=recipe.tta, device=device)
    return calibrate(predictions, ages, male=male, train_predictions=train_predictions, train_targets=train_ages,
                     train_male=train_male)


class Trainer:
    def __init__(self, recipe: Recipe, data: TrainingData, out_dir: Path, *, seed: int,
                 time_budget_s: float | None, progress: bool, data_dir: str,
                 callback: TrainingCallback | None = None, precision: Precision | None = None):
        self.recipe = recipe
        self.data = data
        self.out_dir = out_dir
        self.seed = seed
        self.time_budget_s = time_budget_s
        self.progress = progress
        self.data_dir = data_dir
        self.callback = callback or TrainingCallback()
        self.device = default_device()

        torch.manual_seed(seed)
        train_ages = data.part("train")[2]
        self.prior_ages = torch.from_numpy(train_ages).to(self.device) if recipe.loss == "balanced_mse_z" else None
        self.model = build_model(recipe, float(train_ages.mean()), float(train_ages.std() or 1.0)).to(self.device)
        # Channels-last and the autocast dtype (training/precision.py: Precision.for_training):
        # on CUDA mixed precision (float16 with loss scaling where the GPU has no bfloat16) and
        # batches from DataLoader workers (training/loader.py); on a CPU float32 unless bfloat16
        # is asked for (BONEAGE_TRAIN_PRECISION).
        self.cuda = self.device.type == "cuda"
        self.precision = precision or Precision.for_training(self.device)
        self.precision.prepare(self.model)
        self.amp_dtype = self.precision.torch_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if recipe.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.ema = AveragedModel(self.model, avg_fn=_ema_with_warmup, use_buffers=True) if recipe.ema else None
        self.generator = torch.Generator().manual_seed(seed)
        self.steps_per_epoch = max(1, math.ceil(len(data.indices["train"]) / recipe.batch_size))
        self.total_epochs = recipe.epochs
        self.epoch = 0
        self.step = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_state: dict | None = None
        self.train_seconds = 0.0  # wall clock
        self.train_cpu_seconds = 0.0  # process CPU time, what the time budget counts
        self.cpu_clock = time.process_time  # the budget's clock (a test may replace it)
        self._epoch_cpu_start: float | None = None  # cpu_clock() when the running epoch began
        self._validation_cpu_seconds = 0.0  # the last validation's cost, kept back at the budget's end

    # -- schedule ---------------------------------------------------------------
    def cpu_seconds_spent(self) -> float:
        """Training CPU seconds so far, the running epoch included."""
        running = self.cpu_clock() - self._epoch_cpu_start if self._epoch_cpu_start is not None else 0.0
        return self.train_cpu_seconds + running

    def schedule_progress(self) -> float:
        """How far through its schedule the run is, 0 to 1: the share of the epochs done, or of
        the CPU budget spent when that is further. A budgeted run re-reads its clock at every
        step, so its schedule ends where its budget does, however slow its first epoch was."""
        by_steps = self.step / max(1, self.recipe.epochs * self.steps_per_epoch)
        if not self.time_budget_s:
            return min(1.0, by_steps)
        return min(1.0, max(by_steps, self.cpu_seconds_spent() / self.time_budget_s))

    def budget_spent(self) -> bool:
        """No time left for another batch and the closing validation."""
        return bool(self.time_budget_s) and (
            self.cpu_seconds_spent() + self._validation_cpu_seconds >= self.time_budget_s)

    def learning_rate(self) -> float:
        if self.recipe.schedule == "constant":
            return self.recipe.lr
        if self.time_budget_s:  # warm-up and cosine over the share of the budget spent
            progress = self.schedule_progress()
            if progress < WARMUP_FRACTION:
                return self.recipe.lr * max(progress / WARMUP_FRACTION, 1.0 / max(1, self.steps_per_epoch))
            progress = (progress - WARMUP_FRACTION) / (1 - WARMUP_FRACTION)
        else:  # ... over the steps of the recipe's epochs
            total = self.total_epochs * self.steps_per_epoch
            warmup = max(1, int(WARMUP_FRACTION * total))
            if self.step < warmup:
                return self.recipe.lr * (self.step + 1) / warmup
            progress = min(1.0, (self.step - warmup) / max(1, total - warmup))
        return self.recipe.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

    # -- one epoch ----------------------------------------------------------------
    def _loss(self, images, male, ages, weights=None) -> torch.Tensor:
        return recipe_loss(self.recipe, self.model, images, male, ages, weights, self.prior_ages)

    def training_image_size(self) -> int:
        """The side of this step's training images: image_size, or under progressive resizing
        from progressive_from growing linearly (in steps of 16 px) to image_size at three
        quarters of the schedule, so the last quarter trains at the size the model is used at."""
        full, start = self.recipe.image_size, self.recipe.progressive_from
        if not start or start >= full:
            return full
        share = self.schedule_progress() / PROGRESSIVE_FULL_AT
        if share >= 1.0:
            return full
        return max(16, min(full, int(round((start + (full - start) * share) / 16)) * 16))

    def train_one_epoch(self) -> float:
        self.model.train()
        if self.recipe.freeze_backbone:
            self.model.backbone.eval()  # frozen BN statistics too
        images, male, ages = self.data.part("train")
        weights = sample_weights(ages, self.recipe.sample_weighting) if self.recipe.sample_weighting != "none" else None
        order = torch.randperm(len(images), generator=self.generator).numpy()
        batches = (device_batches(images, order, self.recipe.batch_size, self.recipe.augment, seed=self.seed,
                                  epoch=self.epoch, device=self.device, channels_last=True) if self.cuda else None)
        losses = []
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{self.total_epochs}",
                   disable=not self.progress, leave=False, unit="batch")
        for b in bar:
            self.callback.on_batch(epoch=self.epoch + 1, batch=b, batches=self.steps_per_epoch)
            if self.budget_spent():  # the last epoch of a budgeted run may end early
                break
            idx = order[b * self.recipe.batch_size : (b + 1) * self.recipe.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = (next(batches) if batches is not None else
                 augment(to_float(torch.from_numpy(images[idx])), self.recipe.augment, self.generator).to(self.device))
            size = self.training_image_size()
            if size != x.shape[-1]:
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            x = self.precision.layout(x)
            m = torch.from_numpy(male[idx]).to(self.device)
            y = torch.from_numpy(ages[idx]).to(self.device)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate()
            w = torch.from_numpy(weights[idx]).to(self.device) if weights is not None else None
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self._loss(x, m, y, w)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{self.learning_rate():.1e}")
        return float(np.mean(losses)) if losses else float("nan")

    def evaluated_model(self):
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def refresh_batchnorm(self) -> None:
        """Re-estimate BatchNorm running statistics of the evaluated model on un-augmented
        training images: running averages lag far behind the weights in short runs and
        EMA-averaged statistics do not belong to the averaged weights."""
        model = self.evaluated_model()
        images, male, _ = self.data.part("train")
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.epoch))[:PRECISE_BN_IMAGES]
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches below
        was_training = model.training
        model.train()
        for start in range(0, len(chosen), self.recipe.batch_size):
            idx = chosen[start : start + self.recipe.batch_size].numpy()
            if len(idx) < 2:
                continue
            with self.precision.autocast(self.device):
                model(self.precision.layout(to_float(torch.from_numpy(images[idx])).to(self.device)),
                      torch.from_numpy(male[idx]).to(self.device))
        for norm in norms:
            norm.momentum = 0.1
        model.train(was_training)

    def validate(self) -> float:
        if self.recipe.precise_bn:
            self.refresh_batchnorm()
        images, male, ages = self.data.part("val")
        if len(images) == 0:
            return float("nan")
        predictions = predict_months(self.evaluated_model(), images, male, tta=False, device=self.device,
                                     precision=self.precision)
        return float(np.mean(np.abs(predictions - ages)))

    # -- the loop -----------------------------------------------------------------
    def run(self) -> Path:
        epoch_bar = tqdm(total=self.total_epochs, initial=self.epoch, desc=f"training {self.recipe.name}",
                         disable=not self.progress, unit="epoch")
        self.callback.on_start(epoch=self.epoch, total_epochs=self.total_epochs, history=list(self.history))
        while self.epoch < self.total_epochs and not self.budget_spent():
            started = time.perf_counter()
            self._epoch_cpu_start = self.cpu_clock()
            train_loss = self.train_one_epoch()
            epoch_seconds = time.perf_counter() - started
            val_mae = None
            if self.validates_this_epoch():
                validation_started = self.cpu_clock()
                val_mae = self.validate()
                self._validation_cpu_seconds = self.cpu_clock() - validation_started
            self.train_seconds += time.perf_counter() - started
            self.train_cpu_seconds += self.cpu_clock() - self._epoch_cpu_start
            self._epoch_cpu_start = None
            self.epoch += 1
            self.history.append({"epoch": self.epoch, "train_loss": train_loss, "val_mae": val_mae,
                                 "lr": self.learning_rate(), "seconds": round(self.train_seconds, 1),
                                 "cpu_seconds": round(self.train_cpu_seconds, 1),
                                 "images_per_second": round(len(self.data.indices["train"]) / max(epoch_seconds, 1e-9), 1)})
            if val_mae is not None and self._is_best(self.history[-1]):
                self.best = self.history[-1]
                self.best_state = copy.deepcopy(self.evaluated_model().state_dict())
            self._fit_budget()
            epoch_bar.total = self.total_epochs
            epoch_bar.update(1)
            epoch_bar.set_postfix(loss=f"{train_loss:.3f}", val_mae=f"{val_mae:.2f}" if val_mae is not None else "-",
                                  best=f"{self.best['val_mae']:.2f}" if self.best else "none")
            self._save_resume_state()
            self.callback.on_epoch(dict(self.history[-1]), total_epochs=self.total_epochs)
        epoch_bar.close()
        return self._finish()

    def validates_this_epoch(self) -> bool:
        """After the epoch just trained: validate it? Always for the first epoch (a diverged run
        shows at once, and a budgeted run learns what a validation costs), from the recipe's
        validate_from share of the schedule on, and for the epoch that ends the run."""
        return (self.epoch == 0 or self.schedule_progress() >= self.recipe.validate_from
                or self.epoch + 1 >= self.total_epochs or self.budget_spent())

    def _is_best(self, entry: dict) -> bool:
        """A finite validation MAE below the best so far. Without validation images there is
        nothing to select on: the latest epoch with a finite training loss is taken."""
        if len(self.data.indices["val"]) == 0:
            return math.isfinite(entry["train_loss"])
        return is_new_best(entry["val_mae"], self.best["val_mae"] if self.best else None)

    def _fit_budget(self) -> None:
        """Re-estimate, after every epoch, how many epochs the CPU budget still allows (at the
        last epoch's cost). Only the count shown to the user and the loop's end follow it: the
        learning rate follows the share of the budget spent (schedule_progress)."""
        if self.time_budget_s and self.epoch > 0:
            last = max(self.history[-1]["cpu_seconds"] - (self.history[-2]["cpu_seconds"] if len(self.history) > 1 else 0.0),
                       1e-9)
            remaining = max(0.0, self.time_budget_s - self.train_cpu_seconds)
            self.total_epochs = min(self.recipe.epochs, self.epoch + math.ceil(remaining / last - 0.05))

    def _finish(self) -> Path:
        if self.best is None or self.best_state is None:
            summary = ", ".join(f"epoch {h['epoch']}: val MAE {h['val_mae']}, train loss {h['train_loss']}"
                                for h in self.history)
            raise TrainingDiverged(
                f"training {self.recipe.name} diverged: no epoch reached a finite validation MAE ({summary}); "
                f"no model was saved to {self.out_dir / 'model.pt'}. Try a lower learning rate.")
        final_model = self.evaluated_model()
        final_model.load_state_dict(self.best_state)
        # measured in the layout a loaded checkpoint has, so that its numbers repeat from model.pt
        final_model.to(memory_format=torch.contiguous_format)
        test_images, test_male, test_ages = self.data.part("test")
        metrics: dict = {"best_epoch": self.best["epoch"], "val_mae": self.best["val_mae"],
                         "epochs_run": self.epoch, "train_seconds": round(self.train_seconds, 1),
                         "train_cpu_seconds": round(self.train_cpu_seconds, 1)}
        # The recipe's post-hoc map to months, fitted on the validation split before anything is
        # measured or calibrated: the test metrics and the interval are those of the recalibrated model.
        recalibration = self._fit_recalibration(final_model)
        if len(test_images):
            raw = predict_months(final_model, test_images, test_male, tta=self.recipe.tta, device=self.device)
            predictions = recalibrated(recalibration, raw, test_male)
            if recalibration is not None:
                metrics["test_mae_before_recalibration"] = float(np.mean(np.abs(raw - test_ages)))
            errors = predictions - test_ages
            metrics.update(test_mae=float(np.mean(np.abs(errors))), test_rmse=float(np.sqrt(np.mean(errors**2))),
                           test_n=int(len(errors)))
            ss_tot = float(np.sum((test_ages - test_ages.mean()) ** 2))
            metrics["test_r2"] = 1 - float(np.sum(errors**2)) / ss_tot if ss_tot > 0 else None
        final_model.recalibration = recalibration  # predict_months applies it from here on
        interval = calibrate_interval(final_model, self.data, self.recipe, self.device)
        from training.ood import fit_for_split  # OOD statistics of the model's features (training/ood.py)
        ood = fit_for_split(final_model, self.data, device=self.device)
        metadata = {
            "recipe": self.recipe.to_dict(),
            "preprocessing": Preprocessing.from_recipe(self.recipe).__dict__,
            "seed": self.seed,
            "data_dir": self.data_dir,
            "synthetic": (Path(self.data_dir) / "SYNTHETIC.txt").is_file(),
            "split": self.data.split,
            "metrics": metrics,
            "history": self.history,
            "training_precision": {"dtype": self.precision.dtype, "channels_last": self.precision.channels_last},
            "recalibration": recalibration,
            "interval": interval,
            "ood": ood,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
        }
        path = self.out_dir / "model.pt"
        save_checkpoint(path, final_model, metadata)
        if self.progress:
            summary = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            tqdm.write(f"saved {path}: {summary}")
        return path

    def _fit_recalibration(self, final_model) -> dict | None:
        """The recipe's recalibration (training/recalibration.py) of the chosen model's predictions
        on the validation split, predicted as the Predictor will (recipe TTA); None for "none" or
        too few validation studies. The validation split also chose the epoch (as for the interval)."""
        images, male, ages = self.data.part("val")
        if self.recipe.recalibrate == "none" or len(images) == 0:
            return None
        predictions = predict_months(final_model, images, male, tta=self.recipe.tta, device=self.device)
        return fit_recalibration(predictions, ages, male, self.recipe.recalibrate)

    # -- resume -------------------------------------------------------------------
    def _save_resume_state(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "best_state": self.best_state,
            "generator": self.generator.get_state(),
            "counters": torch.tensor([self.epoch, self.step, self.total_epochs]),
            "train_seconds": torch.tensor([self.train_seconds, self.train_cpu_seconds], dtype=torch.float64),
            "history_json": json.dumps({"history": self.history, "best": self.best}),
        }
        save_atomic(self.out_dir / "last.pt", lambda tmp: torch.save(state, tmp))

    def restore(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.best_state = state["best_state"]
        self.generator.set_state(state["generator"])
        self.epoch, self.step, fitted_epochs = (int(v) for v in state["counters"])
        # a budgeted run keeps the epoch count fitted to its budget; otherwise the caller's count holds
        self.total_epochs = fitted_epochs if self.time_budget_s else self.recipe.epochs
        self.train_seconds, self.train_cpu_seconds = (float(v) for v in state["train_seconds"])
        saved = json.loads(state["history_json"])
        self.history, self.best = saved["history"], saved["best"]
