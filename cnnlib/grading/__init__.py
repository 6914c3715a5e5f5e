"""Grading: the checks a lesson's check cells call (re-exported here, so that a notebook writes
``from cnnlib.grading import check_function``), the learner-version generator
(:mod:`~cnnlib.grading.learner_versions`) and the class grader (:mod:`~cnnlib.grading.class_grader`,
the command line) in its parts: the lessons and submissions (:mod:`~cnnlib.grading.lessons`), the
recorder that replaces the check cells in the learner's kernel (:mod:`~cnnlib.grading.recorder`),
the kernel run (:mod:`~cnnlib.grading.kernel`) and its sandbox (:mod:`~cnnlib.grading.sandbox`),
the judging (:mod:`~cnnlib.grading.judging`) and the reports (:mod:`~cnnlib.grading.gradebook`).

Importing this package imports the checks alone: no torch, no Jupyter machinery.
"""

from cnnlib.grading.checks import check_close, check_function, check_module, check_raises, check_value

__all__ = ["check_close", "check_function", "check_module", "check_raises", "check_value"]
