"""Grading: the checks a lesson's check cells call (re-exported here, so that a notebook writes
``from cnnlib.grading import check_function``), the learner-version generator
(:mod:`~cnnlib.grading.learner_versions`) and the class grader (:mod:`~cnnlib.grading.class_grader`).

Importing this package imports the checks alone: no torch, no Jupyter machinery.
"""

from cnnlib.grading.checks import check_close, check_function, check_module, check_raises, check_value

__all__ = ["check_close", "check_function", "check_module", "check_raises", "check_value"]
