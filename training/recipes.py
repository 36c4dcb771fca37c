"""Training recipes: every choice that defines a model, in one frozen record.

`seed` is exactly the student report's recipe (shared/seed/bone-age-report.txt).
`default` applies the lessons of shared/reference/README.md (Deeplasia, the RSNA 2017
winner, and the CPU calibration runs): sex input, MSE-family loss on a z-scored target,
warm-up + cosine schedule, affine and contrast augmentation, EMA weights, flip test-time
augmentation and CLAHE on the input square, on the film cut to the located hand. It runs at
160 px with batch 16, its training images growing from 96 px (progressive resizing): on a CPU
budget optimizer steps are worth more than pixels (the reference calibration runs: 320 px lost
to 224 px). `large` is the
recipe for the full RSNA set on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class Recipe:
    name: str
    image_size: int = 224
    resize_mode: str = "letterbox"  # "letterbox" keeps the whole hand; "resize_crop" = Resize(256)+CenterCrop(224)
    # "percentile" stretches 1st-99th percentile; "raw" keeps the file's values; "clahe": the stretch,
    # then adaptive histogram equalisation of the input square (training/preprocess.py)
    intensity: str = "percentile"
    crop: str = "none"  # "hand": cut to the located hand (core/hand.py) before resizing; "none": the whole film
    use_sex: bool = True
    # "smooth_l1_z" on the z-scored age; "mse_months" on raw months; "balanced_mse_z": balanced MSE on
    # the z-scored age against the training ages' distribution (training/balanced_mse.py)
    loss: str = "smooth_l1_z"
    balanced_mse_sigma: float = 0.5  # balanced MSE's label noise, in SDs of the training ages
    optimizer: str = "adamw"  # "adamw" | "adam"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 40
    schedule: str = "warmup_cosine"  # "warmup_cosine" | "constant"
    augment: str = "strong"  # "strong" | "rotate10" | "none"
    tta: bool = True  # average with the horizontally flipped image at evaluation
    ema: bool = True  # evaluate an exponential moving average of the weights
    precise_bn: bool = True  # re-estimate BatchNorm statistics on training images before each evaluation
    # Validate (and re-estimate BatchNorm for it) after the first epoch and then only once this share
    # of the schedule is spent, and after the last epoch: a cosine schedule's best epoch is near its
    # end, and on a CPU budget the skipped validations buy training steps. 0 = after every epoch.
    validate_from: float = 0.0
    init: str = "imagenet"  # "imagenet" | "random" | a checkpoint path
    freeze_backbone: bool = False
    # Progressive resizing: training images start at this many pixels and grow to image_size by
    # three quarters of the schedule (evaluation is always at image_size); 0 = off
    progressive_from: int = 0
    sample_weighting: str = "none"  # "lds": label-distribution-smoothing weights (training/sample_weights.py)
    # A monotone map from the prediction (after TTA) to months, fitted on the validation split at the
    # end of training (training/recalibration.py): "none" | "linear" | "linear-sex" | "isotonic"
    recalibrate: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, **overrides) -> "Recipe":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


SEED = Recipe(
    name="seed",
    image_size=224,
    resize_mode="resize_crop",
    intensity="raw",
    use_sex=False,
    loss="mse_months",
    optimizer="adam",
    lr=1e-3,
    weight_decay=0.0,
    batch_size=32,
    epochs=5,
    schedule="constant",
    augment="rotate10",
    tta=False,
    ema=False,
    precise_bn=False,
)

# A post-hoc linear recalibration (recalibrate="linear", fitted on validation) did not lower the held-out
# MAE of 1,200-CPU-second runs (bench_budget.py --recalibrate), so `default` keeps "none".
# Progressive resizing (training images from 96 px up to 160 px by 3/4 of the schedule) beat the
# fixed 160 px under the same 1,200 CPU seconds on every seed measured (docs/benchmarks.md, issue 12);
# balanced MSE did not. CLAHE on top of it (intensity="clahe": the percentile stretch, then adaptive
# histogram equalisation) gave 14.48 months against 20.07 over three seeds (54 epochs), so `default`
# uses both. Where the budget buys only 19 epochs (a slower CPU) neither changed the MAE measurably;
# given 36 epochs there, CLAHE gave 16.66 against 22.37: its gain is one of longer training.
# Validating only from three quarters of the schedule on (validate_from=0.75) let a 1,200-CPU-s run
# train 67 epochs instead of 56 (the first epoch and the last quarter are still validated; the best
# epoch was in the last quarter in every run) for 14.18 / 14.88 / 12.98 months (seeds 0-2) against
# 14.77 (seed 0) under bfloat16 (7 Dec, docs/benchmarks.md).
# The hand crop (crop="hand") lost to the whole film after 6 epochs (300 CPU s) and tied after 11; given
# the ~70 epochs that bfloat16 buys in 1,200 CPU s it gave 13.82 / 12.25 / 14.82 / 13.10 months (seeds 0-3)
# against 14.18 / 14.88 / 12.98 (seeds 0-2) on the whole film: a gain within the seed-to-seed spread, kept for
# its smaller errors at both ends of the age range and smaller sex gap, and because `large` crops too
# (7 Dec, docs/benchmarks.md).
DEFAULT = Recipe(name="default", image_size=160, batch_size=16, lr=1e-3, intensity="clahe", crop="hand",
                 progressive_from=96, validate_from=0.75)

# For the full RSNA set on a GPU: the resolution the anchors use, with default's CLAHE (not measured on a GPU).
LARGE = Recipe(name="large", image_size=448, epochs=60, batch_size=32, lr=1e-3, intensity="clahe", crop="hand")

# A small fast model for `boneage up` on synthetic data: a couple of minutes on a CPU.
DEMO = Recipe(name="demo", image_size=128, epochs=8, batch_size=16, init="random")

RECIPES = {recipe.name: recipe for recipe in (SEED, DEFAULT, LARGE, DEMO)}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
