# The two commands of the course: `make lab` and `make test`.
# Both set up what they need (idempotently: a second run only checks stamps) and then run.

PYTHON      ?= python3
VENV        ?= .venv
SHARED_DATA ?= ../shared/data
PY          := $(VENV)/bin/python
# The set-up, JupyterLab, the test parts and the book are steps of tools/course.py, which is also
# the path without make (README): the two cannot drift apart.
COURSE      := $(PYTHON) tools/course.py --venv $(VENV) --shared-data $(SHARED_DATA)
# Tests run in $(WORKERS) pytest-xdist processes; a notebook's cells stay together, in order, on one
# of them (--dist loadfile). The unit tests run one thread each, so the workers do not compete.
WORKERS     ?= 2
# $(call timed,WHAT,COMMAND): run COMMAND and say how long it took.
timed        = start=$$(date +%s); $(2); rc=$$?; echo "[make test] $(1): $$(( $$(date +%s) - start )) s"; exit $$rc

.PHONY: lab test kernel setup data browser book exercises grade execute unit notebooks portability dry-run bench clean

# setup also registers the notebooks' kernel, again each time, so that it is this checkout's environment.
kernel: setup

# Jupyter refuses to run as root unless told: containers and CI machines often are root.
lab:
	@$(COURSE) lab

test:
	@$(call timed,set-up,$(MAKE) --no-print-directory setup data browser)
	@$(call timed,the book,$(MAKE) --no-print-directory book)
	@$(call timed,unit tests,$(MAKE) --no-print-directory unit)
	@$(call timed,notebooks under nbval,$(MAKE) --no-print-directory notebooks)
	@$(call timed,learner versions under a second numeric configuration,$(MAKE) --no-print-directory portability)
	@$(call timed,notebooks under the full profile's dry run,$(MAKE) --no-print-directory dry-run)

# The venv, the requirements, cnnlib (editable), d2l 1.0.3 without its stale pins, the kernel
# (a second run only checks a stamp), and the data.
setup:
	@$(COURSE) setup

# Offline data: seed data/ from a local copy of the official files when there is one;
# otherwise torchvision downloads them on first use.
data:
	@$(COURSE) data

# The browser test of the widgets needs Chromium (Debian's package, as root) and Playwright.
# Where neither can be installed the test skips and says why. The test opens a lesson in the kernel.
browser: kernel
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser test will skip"; \
	fi
	@if [ ! -x /usr/bin/bwrap ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
	    || echo "bubblewrap could not be installed: the grader will grade without a sandbox and say so"; \
	fi

# The committed lessons as an HTML book, into book/_build/html (nothing re-executed); Sphinx and
# its theme from book/requirements.txt, installed once into the venv.
book:
	@$(COURSE) book

# Learner versions of the lessons (solutions replaced by NotImplementedError, no verdicts stored).
exercises: setup
	$(PY) -m cnnlib.grading.learner_versions notebooks exercises

# Grade a class: make grade SUBMISSIONS="hand-ins/" (notebooks or folders of them), into
# grades.csv and a Markdown report per submission in feedback/.
SUBMISSIONS ?= submissions
grade: setup data
	$(PY) -m cnnlib.grade $(SUBMISSIONS) --out grades.csv --feedback feedback

# Execute lessons in place under the cpu profile, as they are committed (no progress bars, so no
# stderr): make execute NOTEBOOKS="notebooks/04_residual_blocks.ipynb notebooks/05_resnets.ipynb"
NOTEBOOKS ?= $(wildcard notebooks/0*.ipynb)
execute: kernel data
	@for nb in $(NOTEBOOKS); do \
	  start=$$(date +%s); \
	  CI=1 CNNLIB_PROFILE=cpu $(PY) -m jupyter nbconvert --execute --to notebook --inplace \
	    --ExecutePreprocessor.kernel_name=cnnlib --ExecutePreprocessor.timeout=1800 "$$nb" || exit 1; \
	  echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done

# The tests marked slow (each lesson's learner version under nbval) run in `portability`.
unit:
	@$(COURSE) test unit --workers $(WORKERS)

notebooks:
	@$(COURSE) test notebooks --workers $(WORKERS)

# The lessons as learners get them (tests/test_learner_versions.py, marked slow), under the second numeric
# configuration: every compared output must come out the same, and each fails exactly at its exercises.
portability:
	@$(COURSE) test portability --workers $(WORKERS)

# Outputs are not compared (--nbval-lax): the cells must run to the end, that is all. Lesson 06
# takes most of this part (the full recipe's ablation), so it goes first and the other worker runs
# the rest of the lessons beside it.
dry-run:
	@$(COURSE) test dry-run --workers $(WORKERS)

bench: setup data
	$(PY) benchmarks/vs_d2l.py

clean:
	rm -rf $(VENV) exercises
