"""Training: how every network of the course trains.

- :mod:`~cnnlib.training.profiles`: the budgets (full, cpu, smoke) a lesson asks for;
- :mod:`~cnnlib.training.data`: MNIST, Fashion-MNIST, the validation split, the device-resident loader;
- :mod:`~cnnlib.training.loop`: ``fit``, the one training loop, with its callbacks; evaluate, predict;
- :mod:`~cnnlib.training.tricks`: the Bag of Tricks refinements and ``training_recipe``;
- :mod:`~cnnlib.training.speed`: the speedrun's ingredients (EMA, whitening, flip TTA, ...);
- :mod:`~cnnlib.training.speedrun_recipe`: the speedrun, a recipe over ``fit``.

The names a lesson types are re-exported here: ``from cnnlib.training import DeviceLoader, budget, fit``.
"""

from cnnlib.training.data import (FASHION_MNIST_CLASSES, DeviceLoader, class_names, fashion_mnist, mean_std, mnist,
                                  train_val_split)
from cnnlib.training.loop import (Callback, History, TrainingDiverged, choose_device, cpu_has_fast_bf16, evaluate, fit,
                                  predict, prefers_channels_last, seed_everything, xavier_init_)
from cnnlib.training.profiles import PROFILES, active_profile, budget

__all__ = ["FASHION_MNIST_CLASSES", "PROFILES", "Callback", "DeviceLoader", "History", "TrainingDiverged", "active_profile",
           "budget", "choose_device", "class_names", "cpu_has_fast_bf16", "evaluate", "fashion_mnist", "fit", "mean_std",
           "mnist", "predict", "prefers_channels_last", "seed_everything", "train_val_split", "xavier_init_"]
