"""Presets: the papers' vision protocols, as benchmark plans.

``unlearnkit bench --preset cifar10-resnet18 --data cifar10:PATH`` fills whatever the user did not
set (model, scenarios, seeds, audits) and prints the table in the preset's layout; its
hyper-parameters — the original's training recipe (``train``) and each method's (``methods``) — are
one layer of the resolver (``resolve.py``), over the methods' own defaults and under ``--quick``
and ``--set``. ``retrain`` repeats the recipe, then takes ``methods["retrain"]``.

Every value is a :class:`Cited`: the value and the file it comes from (the paper's repository,
mirrored at ``OWNER+NAME``; a path in it; the README command), or ``ours: …`` with the reason where
the papers publish nothing or our loop cannot express theirs. A method a preset does not list runs
with its own documented defaults (``docs/methods.md``). ``docs/presets.md`` prints these tables
(:func:`markdown_table`; a test keeps the page in step).

Sources, by short name:

- Unlearn-Saliency (SalUn; OPTML-Group/Unlearn-Saliency at a6e89fd): ``Classification/README.md``,
  ``arg_parser.py``, ``main_train.py``, ``unlearn/impl.py`` (every unlearning method's SGD and
  schedule), ``unlearn/RL.py``, ``generate_mask.py``.
- Unlearn-Sparse (OPTML-Group/Unlearn-Sparse at 80ba55d): ``README.MD`` (the Retrain/FT/GA/ℓ1-sparse
  commands), ``arg_parser.py``, ``unlearn/FT.py``, ``unlearn/RL.py`` (last at 48d335e); its later
  reproduction helper ``.codex/skills/unlearn-sparse-repro/`` (``references/repro-matrix.md``,
  ``scripts/generate_repro_commands.py``).
- SCRUB (meghdadk/SCRUB at 98ffb11): ``large_scale_unlearning.ipynb`` (CIFAR-10), ``resnet50_cifar100.ipynb``.
- SSD (if-loops/selective-synaptic-dampening): ``src/forget_*_main.py``, ``src/ssd.py``.
- Entangle (Jingpu-Cheng/unlearning-entanglement at 8189a06): ``experiments/cifar100_resnet18/run.py``
  and its baseline settings, as recorded in ``../shared/research/seeds-1-3.md`` (the repository is not
  mirrored here).

None of these presets has been run at full scale on this project's machines; a full run is hours of
GPU time per seed (an original, one retrain per scenario and seed, ~20 methods).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class Cited:
    """One preset value and where it comes from."""

    value: Any
    source: str


C = Cited

# ---------------------------------------------------------------------------------------- sources
SALUN = "Unlearn-Saliency Classification/"
SPARSE = "Unlearn-Sparse "
IMPL = SALUN + "unlearn/impl.py (= Unlearn-Sparse unlearn/impl.py)"
REPRO = SPARSE + ".codex/skills/unlearn-sparse-repro/scripts/generate_repro_commands.py"
SCRUB10 = "SCRUB large_scale_unlearning.ipynb (CIFAR-10, ResNet-18)"
SCRUB100 = "SCRUB resnet50_cifar100.ipynb (CIFAR-100, ResNet-50)"
ENTANGLE = "unlearning-entanglement experiments/cifar100_resnet18/run.py (../shared/research/seeds-1-3.md)"
ENTANGLE_BASE = "unlearning-entanglement baseline settings, CIFAR-100 (../shared/research/seeds-1-3.md)"
NO_91_136 = ("ours: the code decays ×0.1 at epochs 91 and 136 (arg_parser.py --decreasing_lr 91,136, "
             "MultiStepLR in main_train.py); our schedules are constant|cosine|linear, cosine is the closest")

# ------------------------------------------------------------------- the SalUn / Unlearn-Sparse recipe
# The original: SalUn README ``python main_train.py --arch resnet18 --dataset cifar10 --lr 0.1 --epochs 182``
# with arg_parser.py's defaults (the same defaults serve --dataset cifar100 and TinyImagenet).
SALUN_TRAIN: dict[str, Cited] = {
    "epochs": C(182, SALUN + "README.md main_train.py --epochs 182; arg_parser.py --epochs 182"),
    "lr": C(0.1, SALUN + "README.md main_train.py --lr 0.1; arg_parser.py --lr 0.1"),
    "optimizer": C("sgd", SALUN + "main_train.py torch.optim.SGD"),
    "momentum": C(0.9, SALUN + "arg_parser.py --momentum 0.9"),
    "weight_decay": C(5e-4, SALUN + "arg_parser.py --weight_decay 5e-4"),
    "batch_size": C(256, SALUN + "arg_parser.py --batch_size 256"),
    "warmup": C(0.0, SALUN + "arg_parser.py --warmup 0"),
    "schedule": C("cosine", NO_91_136),
    "augment": C(True, SALUN + "dataset.py RandomCrop(32, padding=4) + RandomHorizontalFlip"),
}


def salun_unlearning(lr: Cited, epochs: Cited) -> dict[str, Cited]:
    """What every SalUn/Unlearn-Sparse unlearning run shares (``iterative_unlearn`` in impl.py builds
    the optimizer and schedule; arg_parser.py's defaults fill them), with the method's lr and epochs."""
    return {
        "lr": lr,
        "epochs": epochs,
        "optimizer": C("sgd", IMPL + " torch.optim.SGD"),
        "momentum": C(0.9, IMPL + " momentum=args.momentum; arg_parser.py --momentum 0.9"),
        "weight_decay": C(5e-4, IMPL + " weight_decay=args.weight_decay; arg_parser.py --weight_decay 5e-4"),
        "batch_size": C(256, SALUN + "arg_parser.py --batch_size 256 (main_forget.py / main_random.py loaders)"),
        "schedule": C("constant", IMPL + " MultiStepLR at 91,136: never reached within 10 epochs"),
        "augment": C(True, SALUN + "main_random.py: the forget/retain loaders keep the training transform"),
    }


def random_label_feed(branch: str) -> dict[str, Cited]:
    """RL's (and SalUn's) data feed and random targets; ``branch``: the dataset branch of RL.py."""
    if branch == "cifar10":
        feed = C("union", "ours: " + SALUN + "unlearn/RL.py's cifar10 branch steps a forget pass, then a "
                 "retain pass (Unlearn-Saliency issue #21); the shared loop has no such feed yet. union is "
                 "its cifar100/TinyImagenet branch and Unlearn-Sparse unlearn/RL.py (48d335e)")
        draw = C("any", SALUN + "unlearn/RL.py cifar10 branch: torch.randint(0, args.num_classes)")
    else:
        feed = C("union", SALUN + "unlearn/RL.py cifar100/TinyImagenet branch: ConcatDataset([forget, retain]), "
                 "shuffled DataLoader")
        draw = C("any", SALUN + "unlearn/RL.py cifar100/TinyImagenet branch: np.random.randint(0, args.num_classes)")
    return {"feed": feed, "label_draw": draw}


RL_LR = C(0.013, SALUN + "README.md SalUn command (main_random.py --unlearn RL --unlearn_lr 0.013); "
                 "RL without a mask has no command of its own (ours: the same)")
RL_EPOCHS = C(10, SALUN + "README.md SalUn command --unlearn_epochs 10")
SALIENCY = {
    "saliency_fraction": C(0.5, SALUN + "README.md --mask_path mask/with_0.5.pt (generate_mask.py threshold 0.5)"),
    "mask_scope": C("global", SALUN + "generate_mask.py: one ranking over all parameters"),
}
# SSD at the paper's α and λ: at a forget fraction of 10 % α = 10 selects no weight (methods/ssd.py
# docstring: α must stay below ≈ (k_f + k_r)/k_f ≈ 9.9 here); --set ssd.alpha=… below that bound acts
SSD_PAPER = {
    "alpha": C(10.0, "SSD src/forget_*_main.py selection_weighting 10 (ResNet-18); no weight is selected at a "
                     "10 % forget set (bound ≈ 9.9, methods/ssd.py)"),
    "lam": C(1.0, "SSD src/forget_*_main.py dampening_constant 1"),
    "importance": C("per_batch", "SSD src/ssd.py calc_importance: squared mini-batch-mean gradients"),
}


def salun_methods(branch: str, *, scrub: dict[str, Cited] | None, also: str = "") -> dict:
    """The SalUn/Unlearn-Sparse table's methods on ``branch`` data (cifar10 | cifar100 | tinyimagenet);
    ``also``: appended to the sources of the README commands that another file reuses on this data."""
    def readme(command: str) -> str:
        return SPARSE + "README.MD " + command + also

    methods = {
        "retrain": {"epochs": C(160, SPARSE + "README.MD Retrain command --unlearn_epochs 160"),
                    "lr": C(0.1, SPARSE + "README.MD Retrain command --unlearn_lr 0.1")},
        "finetune": salun_unlearning(C(0.01, readme("FT command --unlearn_lr 0.01")),
                                     C(10, readme("FT command --unlearn_epochs 10"))),
        "ga": salun_unlearning(C(1e-4, readme("GA command --unlearn_lr 0.0001")),
                               C(5, readme("GA command --unlearn_epochs 5"))),
        "random_label": {**salun_unlearning(RL_LR, RL_EPOCHS), **random_label_feed(branch)},
        "salun": {**salun_unlearning(RL_LR, RL_EPOCHS), **random_label_feed(branch), **SALIENCY},
        "l1_sparse": {
            **salun_unlearning(C(0.01, readme("ℓ1-sparse command (FT_prune) --unlearn_lr 0.01")),
                               C(10, readme("ℓ1-sparse command (FT_prune) --unlearn_epochs 10"))),
            "gamma": C(5e-4, "ours: the README leaves --alpha ${alpha} to the user (its argparse default 0.2 is "
                             "Fisher forgetting's noise); 5e-4 is the entangle code's ℓ1-sparse baseline value"),
            "gamma_schedule": C("epoch", SPARSE + "unlearn/FT.py FT_iter: current_alpha once per epoch"),
            "no_l1_epochs": C(0, SPARSE + "arg_parser.py --no-l1-epochs 0"),
        },
        "ssd": dict(SSD_PAPER),
    }
    if scrub is not None:
        methods["scrub"] = scrub
    return methods


SCRUB_CIFAR10: dict[str, Cited] = {
    "optimizer": C("sgd", SCRUB10 + ": args.optim = 'sgd'"),
    "lr": C(5e-4, SCRUB10 + ": args.sgda_learning_rate = 0.0005"),
    "momentum": C(0.9, SCRUB10 + ": args.sgda_momentum = 0.9"),
    "weight_decay": C(5e-4, SCRUB10 + ": args.sgda_weight_decay = 5e-4"),
    "epochs": C(3, SCRUB10 + ": args.sgda_epochs = 3"),
    "msteps": C(2, SCRUB10 + ": args.msteps = 2"),
    "temperature": C(4.0, SCRUB10 + ": args.kd_T = 4"),
    "alpha": C(0.001, SCRUB10 + ": args.alpha = 0.001"),
    "gamma": C(0.99, SCRUB10 + ": args.gamma = 0.99"),
    "batch_size": C(256, SCRUB10 + ": retain_loader = replace_loader_dataset(…, batch_size=256)"),
    "forget_batch_size": C(512, SCRUB10 + ": forget_loader = replace_loader_dataset(…, batch_size=512)"),
    "schedule": C("constant", SCRUB10 + ": lr_decay_epochs [3,5,9] never fire within 3 epochs"),
}
SCRUB_CIFAR100: dict[str, Cited] = {
    "optimizer": C("adam", SCRUB100 + ": args.optim = 'adam'"),
    "lr": C(5e-4, SCRUB100 + ": args.sgda_learning_rate = 0.0005"),
    "weight_decay": C(5e-4, SCRUB100 + ": args.sgda_weight_decay = 5e-4"),
    "epochs": C(5, SCRUB100 + ": args.sgda_epochs = 5"),
    "msteps": C(5, SCRUB100 + ": args.msteps = 5"),
    "temperature": C(4.0, SCRUB100 + ": args.kd_T = 4"),
    "alpha": C(0.5, SCRUB100 + ": args.alpha = 0.5"),
    "gamma": C(1.0, SCRUB100 + ": args.gamma = 1"),
    "batch_size": C(128, SCRUB100 + ": args.retain_bs = 128"),
    "forget_batch_size": C(64, SCRUB100 + ": args.forget_bs = 64"),
    "schedule": C("constant", SCRUB100 + ": lr_decay_epochs [5,5,9]: a decay at epoch 5 of 5 never acts"),
}


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    data: tuple[str, ...]  # data names this protocol is defined on
    model: str
    scenarios: tuple[str, ...]
    audits: tuple[str, ...]
    seeds: int
    train: dict[str, Cited] = field(default_factory=dict)  # the original's training recipe
    methods: dict[str, dict[str, Cited]] = field(default_factory=dict)  # per method ("retrain" included)
    columns: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # where the protocol itself (model, scenarios, seeds) departs from the paper

    def check_data(self, data: str) -> None:
        name = data.partition(":")[0]
        if name not in self.data:
            raise ConfigError(f"preset {self.name} is defined on {' or '.join(d + ':PATH' for d in self.data)}; "
                              f"got --data {data}")

    def values(self, target: str) -> dict[str, Any]:
        """The plain values for ``target`` ("train" or a method name; {} if the preset has none):
        what the resolver's preset layer applies."""
        cited = self.train if target == "train" else self.methods.get(target, {})
        return {key: c.value for key, c in cited.items()}

    def sources(self, target: str) -> dict[str, str]:
        """Where each of ``target``'s values comes from."""
        cited = self.train if target == "train" else self.methods.get(target, {})
        return {key: c.source for key, c in cited.items()}

    def targets(self) -> list[str]:
        return (["train"] if self.train else []) + list(self.methods)


PRESETS: Registry[Preset] = Registry("preset")

# SalUn's table layout, plus (ours) the MIA's AUC beside its efficacy and the per-seed Avg Gap beside the
# papers' gap of the seed means
SALUN_HEADERS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy", "mia_auc": "MIA-AUC",
                 "avg_gap": "Avg. Gap", "avg_gap_seedwise": "Avg. Gap (per seed)", "seconds": "RTE (s)"}
SALUN_COLUMNS = ("ua", "ra", "ta", "mia_efficacy", "mia_auc", "avg_gap", "avg_gap_seedwise", "seconds")
SEEDS_NOTE = ("seeds: 3 (ours: compute; Unlearn-Sparse's repro-matrix.md reports 10 independent trials)")

PRESETS.register("cifar10-resnet18")(Preset(
    name="cifar10-resnet18",
    summary="Unlearn-Sparse/SalUn protocol: ResNet-18 on CIFAR-10, class-wise (class 0) and random 10 % forgetting",
    data=("cifar10",), model="resnet18", scenarios=("class:0", "random:0.1"),
    audits=("accuracy", "mia"), seeds=3, train=SALUN_TRAIN, methods=salun_methods("cifar10", scrub=SCRUB_CIFAR10),
    columns=SALUN_COLUMNS, headers=SALUN_HEADERS,
    notes=("scenarios: class 0 and a random 10 % (Unlearn-Sparse repro-matrix.md: --class_to_replace 0 / -1 "
           "--num_indexes_to_replace 4500 of their 45,000 training images; we forget within all 50,000)",
           SEEDS_NOTE),
))

PRESETS.register("cifar100-resnet18")(Preset(
    name="cifar100-resnet18",
    summary="Unlearn-Sparse/SalUn protocol on CIFAR-100: ResNet-18, class-wise (class 0) and random 10 % forgetting",
    data=("cifar100",), model="resnet18", scenarios=("class:0", "random:0.1"),
    audits=("accuracy", "mia"), seeds=3, train=SALUN_TRAIN,
    methods=salun_methods("cifar100", scrub=SCRUB_CIFAR100,
                          also="; reused on cifar100 by " + REPRO.removeprefix(SPARSE) + " emit_appendix"),
    columns=SALUN_COLUMNS, headers=SALUN_HEADERS,
    notes=("scenarios: class 0 and a random 10 % (" + REPRO + ": cifar100 class 0, 450 images, and random 4,500)",
           "the training recipe is arg_parser.py's defaults, which the code applies to --dataset cifar100 "
           "(repro-matrix.md: CIFAR-100, 182 epochs, batch 256, weight decay 5e-4, decay at 50 % and 75 %)",
           "RL/SalUn: no CIFAR-100 command is published (ours: the CIFAR-10 README command)",
           SEEDS_NOTE),
))

PRESETS.register("tinyimagenet-resnet18")(Preset(
    name="tinyimagenet-resnet18",
    summary="Unlearn-Sparse/SalUn recipe on Tiny-ImageNet (64 px): ResNet-18, class-wise (class 0) and "
            "random 10 % forgetting",
    data=("tinyimagenet",), model="resnet18", scenarios=("class:0", "random:0.1"),
    audits=("accuracy", "mia"), seeds=3, train=SALUN_TRAIN,
    methods=salun_methods("tinyimagenet", scrub=None),
    columns=SALUN_COLUMNS, headers=SALUN_HEADERS,
    notes=("no Tiny-ImageNet command is published (Unlearn-Saliency issue #16: its Tiny-ImageNet code is "
           "missing); the code's TinyImagenet path takes arg_parser.py's defaults, so the recipe and the "
           "README commands (which name no dataset) are what it runs; RL.py's TinyImagenet branch is the union feed",
           "scenarios: class 0 and a random 10 % (ours: the CIFAR protocol's)",
           "SCRUB: no Tiny-ImageNet setting is published; it keeps its own defaults (ours)",
           SEEDS_NOTE),
))

# The entangled setting of "Machine Unlearning under Retain-Forget Entanglement" (ICLR 2026): train on
# CIFAR-100's 20 superclasses, forget fine class 1 ("aquarium fish", superclass "fish"); RA-adjacent is
# the accuracy on the other fish, RA-remote on the other 19 superclasses.
ENTANGLE_TRAIN: dict[str, Cited] = {
    "epochs": C(30, ENTANGLE + ": pretraining 30 epochs"),
    "lr": C(1e-3, ENTANGLE + ": pretraining SGD lr 1e-3"),
    "optimizer": C("sgd", ENTANGLE + ": pretraining SGD"),
    "momentum": C(0.9, ENTANGLE + ": pretraining momentum 0.9"),
    "weight_decay": C(5e-4, ENTANGLE + ": pretraining weight decay 5e-4"),
    "schedule": C("cosine", ENTANGLE + ": pretraining cosine schedule"),
    "batch_size": C(256, ENTANGLE + ": pretraining batch 256"),
}
ENTANGLE_METHODS: dict[str, dict[str, Cited]] = {
    "entangle": {
        "phase1_epochs": C(1, ENTANGLE + ": stage 1, 1 epoch over D_rem"),
        "phase1_lr": C(2.5e-6, ENTANGLE + ": stage 1 Adam lr 2.5e-6"),
        "mu": C(10.0, ENTANGLE + ": μ 10"),
        "gamma": C(1.0, ENTANGLE + ": γ 1"),
        "clip": C(10.0, ENTANGLE + ": c_clip 10"),
        "p1_remote_batch": C(128, ENTANGLE + ": stage 1 remote batch 128"),
        "p1_forget_batch": C(16, ENTANGLE + ": stage 1 forget batch 16"),
        "phase2_epochs": C(6, ENTANGLE + ": stage 2, 6 epochs"),
        "phase2_lr": C(2e-5, ENTANGLE + ": stage 2 SGD lr 2e-5"),
        "alpha": C(0.5, ENTANGLE + ": α 0.5"),
        "momentum2": C(0.9, ENTANGLE + ": m 0.9"),
        "basis_batches": C(10, ENTANGLE + ": K 10"),
        "p2_adjacent_batch": C(128, ENTANGLE + ": stage 2 adjacent batch 128"),
        "p2_forget_batch": C(128, ENTANGLE + ": stage 2 forget batch 128"),
        "p2_remote_batch": C(512, ENTANGLE + ": stage 2 remote batch 512"),
        "adjacency": C("split", ENTANGLE + ": D_adj = the other fine classes of the superclass (subclass:K)"),
    },
    "finetune": {"optimizer": C("adam", ENTANGLE_BASE + ": FT Adam"),
                 "lr": C(2.5e-5, ENTANGLE_BASE + ": FT lr 2.5e-5"),
                 "epochs": C(10, ENTANGLE_BASE + ": FT 10 epochs on D_rem ∪ D_adj")},
    "ga": {"optimizer": C("sgd", ENTANGLE_BASE + ": GA SGD"),
           "lr": C(1.5e-5, ENTANGLE_BASE + ": GA lr 1.5e-5"),
           "epochs": C(10, ENTANGLE_BASE + ": GA 10 epochs")},
    "l1_sparse": {"optimizer": C("sgd", ENTANGLE_BASE + ": L1-sparse SGD"),
                  "lr": C(1e-3, ENTANGLE_BASE + ": L1-sparse lr 1e-3"),
                  "momentum": C(0.9, ENTANGLE_BASE + ": L1-sparse momentum 0.9"),
                  "gamma": C(5e-4, ENTANGLE_BASE + ": L1-sparse α 5e-4, decaying linearly")},
    "scrub": {"optimizer": C("adam", ENTANGLE_BASE + ": SCRUB Adam"),
              "lr": C(5e-5, ENTANGLE_BASE + ": SCRUB lr 5e-5"),
              "epochs": C(10, ENTANGLE_BASE + ": SCRUB 10 epochs"),
              "msteps": C(5, ENTANGLE_BASE + ": SCRUB 5 max-steps"),
              "alpha": C(0.1, ENTANGLE_BASE + ": SCRUB α 0.1"),
              "gamma": C(0.9, ENTANGLE_BASE + ": SCRUB γ 0.9")},
    "ssd": {"alpha": C(10.0, ENTANGLE_BASE + ": SSD selection weighting 10; SSD src/forget_subclass_main.py 10"),
            "lam": C(1.0, ENTANGLE_BASE + ": SSD dampening 1; SSD src/forget_subclass_main.py 1"),
            "importance": C("per_batch", "SSD src/ssd.py calc_importance: squared mini-batch-mean gradients"),
            "batch_size": C(64, "SSD src/forget_subclass_main.py -b 64")},
    "salun": {"optimizer": C("adamw", ENTANGLE_BASE + ": SalUn AdamW"),
              "lr": C(1e-5, ENTANGLE_BASE + ": SalUn lr 1e-5"),
              "weight_decay": C(0.05, ENTANGLE_BASE + ": SalUn weight decay 0.05"),
              "saliency_fraction": C(0.5, ENTANGLE_BASE + ": SalUn mask fraction 0.5")},
}

PRESETS.register("cifar100-subclass")(Preset(
    name="cifar100-subclass",
    summary="entangled setting: ResNet-18 on CIFAR-100 superclasses, forget one fine class, adjacent vs remote retain",
    data=("cifar100",), model="resnet18", scenarios=("subclass:1",),
    audits=("accuracy", "mia"), seeds=3, train=ENTANGLE_TRAIN, methods=ENTANGLE_METHODS,
    columns=("ua", "ra", "adjacent_acc", "remote_acc", "ta", "mia_efficacy", "mia_auc", "avg_gap", "avg_gap_seedwise",
             "seconds"),
    headers={**SALUN_HEADERS, "adjacent_acc": "RA-adjacent", "remote_acc": "RA-remote"},
    notes=("scenario: fine class 1, aquarium fish, in superclass fish (" + ENTANGLE + ")",
           "model: ours, ResNet-18 with the CIFAR stem at 32 px; the paper trains torchvision's ResNet-18 at 224 px",
           "seeds: 3 (the entangle scripts: 3 seeds)",
           "retrain: the paper reports no retrain oracle (ours: the recipe repeated on the retain set)",
           "baseline epochs and batch sizes the research note does not record keep each method's defaults (ours)"),
))


def markdown_table(preset: Preset) -> str:
    """The preset's values as a markdown table (target, key, value, source): what docs/presets.md shows."""
    rows = ["| target | key | value | source |", "|---|---|---|---|"]
    for target in preset.targets():
        cited = preset.train if target == "train" else preset.methods[target]
        for key, c in cited.items():
            rows.append(f"| `{target}` | `{key}` | `{c.value}` | {c.source.replace('|', '&#124;')} |")
    return "\n".join(rows)
