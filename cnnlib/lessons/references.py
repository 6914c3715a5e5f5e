"""Published figures that the lessons compare their own results with, each with its source.

A lesson shows them with a cell (``rows(D2L)`` into a table), never by typing them into prose.
The parameter counts are checked against torchvision's and cnnlib's models in
tests/test_references.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PublishedFigure:
    """One published number: what it is, its value (and unit), and where it was published."""

    what: str
    value: float
    unit: str
    source: str


TORCHVISION = "torchvision 0.29, torchvision.models (1000 classes)"
TIMM = "timm 1.0 (1000 classes)"
D2L_SOURCE = "Dive into Deep Learning, classic edition 0.17.6, on one Tesla V100 GPU"
ALEXNET_PAPER = "Krizhevsky, Sutskever & Hinton, ImageNet classification with deep CNNs, NeurIPS 2012"
RESNET_PAPER = "He, Zhang, Ren & Sun, Deep residual learning for image recognition, arXiv 1512.03385"
TRICKS_PAPER = "He et al., Bag of tricks for image classification with CNNs, arXiv 1812.01187"
FASHION_BENCHMARK = "zalandoresearch/fashion-mnist, README, benchmark section"

PARAMETERS: dict[str, PublishedFigure] = {
    name: PublishedFigure(f"{name} parameters", count, "parameters", TORCHVISION if not name.endswith("d") else TIMM)
    for name, count in {
        "alexnet": 61_100_840,
        "googlenet": 6_624_904,  # without the auxiliary classifiers
        "resnet18": 11_689_512,
        "resnet34": 21_797_672,
        "resnet50": 25_557_032,
        "resnet101": 44_549_160,
        "resnet152": 60_192_808,
        "resnet18d": 11_708_744,
        "resnet34d": 21_816_904,
        "resnet50d": 25_576_264,
        "resnet101d": 44_568_392,
        "resnet152d": 60_212_040,
    }.items()
}

D2L: dict[str, dict[str, PublishedFigure]] = {
    "alexnet": {
        "test_acc": PublishedFigure("AlexNet, Fashion-MNIST test accuracy (resize 224, lr 0.01, batch 128, 10 epochs)",
                                    0.884, "fraction", D2L_SOURCE + ", section 7.1"),
        "examples_per_s": PublishedFigure("AlexNet training throughput", 4186, "examples/s",
                                          D2L_SOURCE + ", section 7.1"),
    },
    "googlenet": {
        "test_acc": PublishedFigure("GoogLeNet, Fashion-MNIST test accuracy (resize 96, lr 0.1, batch 128, 10 epochs)",
                                    0.889, "fraction", D2L_SOURCE + ", section 7.4"),
        "examples_per_s": PublishedFigure("GoogLeNet training throughput", 3512, "examples/s",
                                          D2L_SOURCE + ", section 7.4"),
    },
    "resnet18": {
        "test_acc": PublishedFigure("ResNet-18, Fashion-MNIST test accuracy (resize 96, lr 0.05, batch 256, 10 epochs)",
                                    0.865, "fraction", D2L_SOURCE + ", section 7.6"),
        "train_acc": PublishedFigure("ResNet-18, Fashion-MNIST training accuracy (same run)", 0.997, "fraction",
                                     D2L_SOURCE + ", section 7.6"),
        "examples_per_s": PublishedFigure("ResNet-18 training throughput", 4713, "examples/s",
                                          D2L_SOURCE + ", section 7.6"),
    },
}

ALEXNET: dict[str, PublishedFigure] = {
    "relu_speedup": PublishedFigure("epochs to 25% training error on CIFAR-10, tanh / ReLU (four-layer CNN)", 6,
                                    "times", ALEXNET_PAPER + ", section 3.1, figure 1"),
    "lrn_top1": PublishedFigure("top-1 error lowered by local response normalisation", 1.4, "points",
                                ALEXNET_PAPER + ", section 3.3"),
    "lrn_top5": PublishedFigure("top-5 error lowered by local response normalisation", 1.2, "points",
                                ALEXNET_PAPER + ", section 3.3"),
    "overlap_top1": PublishedFigure("top-1 error lowered by overlapping pooling (3x3, stride 2, against 2x2)", 0.4,
                                    "points", ALEXNET_PAPER + ", section 3.4"),
    "overlap_top5": PublishedFigure("top-5 error lowered by overlapping pooling", 0.3, "points",
                                    ALEXNET_PAPER + ", section 3.4"),
    "dropout_iterations": PublishedFigure("iterations to converge with dropout, relative to without (roughly)", 2,
                                          "times", ALEXNET_PAPER + ", section 4.2"),
}

RESNET_FLOPS: dict[int, PublishedFigure] = {  # ImageNet networks at 224x224, the paper's table 1, last row
    depth: PublishedFigure(f"ResNet-{depth} 'FLOPs' at 224x224", flops, "FLOPs (as published)",
                           RESNET_PAPER + ", table 1")
    for depth, flops in {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}.items()
}

RESNET_CIFAR: dict[str, dict[str, PublishedFigure]] = {  # CIFAR-10, the 6n + 2-layer networks of section 4.2
    "resnet20": {"params": PublishedFigure("ResNet-20 (CIFAR) parameters, rounded", 0.27e6, "parameters",
                                           RESNET_PAPER + ", table 6"),
                 "test_error": PublishedFigure("ResNet-20 CIFAR-10 test error", 8.75, "percent",
                                               RESNET_PAPER + ", table 6")},
    "resnet56": {"params": PublishedFigure("ResNet-56 (CIFAR) parameters, rounded", 0.85e6, "parameters",
                                           RESNET_PAPER + ", table 6"),
                 "test_error": PublishedFigure("ResNet-56 CIFAR-10 test error", 6.97, "percent",
                                               RESNET_PAPER + ", table 6")},
}

BAG_OF_TRICKS: dict[str, PublishedFigure] = {
    "baseline_top1": PublishedFigure("ResNet-50 ImageNet top-1 accuracy, the paper's baseline", 75.3, "percent",
                                     TRICKS_PAPER + ", table 1"),
    "all_tricks_top1": PublishedFigure("ResNet-50-D with every refinement, ImageNet top-1 accuracy", 79.29, "percent",
                                       TRICKS_PAPER + ", table 1"),
}

FASHION_MNIST: dict[str, PublishedFigure] = {
    "best": PublishedFigure("WRN-28-10 with random erasing, test accuracy", 0.963, "fraction", FASHION_BENCHMARK),
    "human": PublishedFigure("human performance, test accuracy", 0.835, "fraction", FASHION_BENCHMARK),
}


def rows(figures: dict) -> list[dict]:
    """A (possibly nested) dict of figures as table rows ``{key, what, value, unit, source}``,
    nested keys joined by "." (``pandas.DataFrame(rows(D2L))`` shows them)."""
    out = []
    for key, item in figures.items():
        if isinstance(item, PublishedFigure):
            out.append({"key": key, **asdict(item)})
        else:
            out.extend({**row, "key": f"{key}.{row['key']}"} for row in rows(item))
    return out
