"""``python -m cnnlib.grade``: grade a class of submissions (see :mod:`cnnlib.grading.class_grader`)."""

import sys

from cnnlib.grading.class_grader import main

if __name__ == "__main__":
    sys.exit(main())
