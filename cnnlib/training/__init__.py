"""Training: the datasets and the device-resident loader (:mod:`~cnnlib.training.data`), the one
training loop ``fit`` (:mod:`~cnnlib.training.loop`), the Bag of Tricks refinements
(:mod:`~cnnlib.training.tricks`), the speed ingredients (:mod:`~cnnlib.training.speed`), the
speedrun's recipe over ``fit`` (:mod:`~cnnlib.training.speedrun_recipe`) and the budgets of the
profiles (:mod:`~cnnlib.training.profiles`).
"""
