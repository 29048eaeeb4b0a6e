"""The papers' published numbers, to print beside ours. Sources are named per entry."""

from __future__ import annotations

# Adi et al. 2018, Table 1 (ResNet-18, CIFAR): test-set and trigger-set accuracy in percent.
ADI_TABLE1 = {
    "cifar10": {"No-WM": (93.42, 7.0), "FROMSCRATCH": (93.81, 100.0), "PRETRAINED": (93.65, 100.0)},
    "cifar100": {"No-WM": (74.01, 1.0), "FROMSCRATCH": (73.67, 100.0), "PRETRAINED": (73.62, 100.0)},
}

# Adi et al. 2018, Table 2: RTAL transfer to STL-10, original head swapped back in for the trigger set.
ADI_TABLE2 = {
    "CIFAR-10 → STL-10": (81.87, 72.0),
    "CIFAR-100 → STL-10": (77.3, 62.0),
}

# Adi et al. 2018, Figs. 6 and 7 are bar charts without printed values; what the text states about them.
ADI_FIG6_TEXT = (
    "FROMSCRATCH keeps roughly the same trigger-set accuracy under all four fine-tunings; "
    "PRETRAINED is equal or worse, and loses most of its trigger set under RTAL on CIFAR-100."
)
ADI_FIG7_TEXT = (
    "After a pirate embeds TS-NEW and fine-tunes (FTAL, RTAL), the original TS-ORIG stays embedded "
    "(its accuracy even improves) while TS-NEW drops significantly."
)

# Jia et al. 2021 / reference code (CIFAR-10, ResNet-20, k = 100), via shared/papers/pol-reference-notes.md.
POL_HONEST_NORMALISED_ERROR = {"l1": 0.07, "l2": 0.08, "linf": 0.10, "cos": 0.009}
POL_D_REF_L2 = 71.5
POL_NORMALISED_DELTA = 0.008  # "typically"

# Zhang et al. 2022 (CIFAR-10, ResNet-20, k = 100).
ZHANG_SPOOF = {"steps": 1000, "seconds": 950, "normalised_error": 0.04, "gradients_per_step": 20}
