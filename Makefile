# The two commands of the course: `make lab` and `make test`.
# Both set up what they need (idempotently: a second run only checks stamps) and then run.

PYTHON      ?= python3
VENV        ?= .venv
SHARED_DATA ?= ../shared/data
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.cnnlib-installed
DATA_FILES  := $(foreach set,MNIST FashionMNIST,$(foreach f,train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte,data/$(set)/raw/$(f).gz))
NBVAL       := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# A second numeric configuration of the same machine: the oldest CPU kernels (no AVX), the
# oldest oneDNN ISA and one thread. Compared notebook outputs must not change under it.
PORTABLE    := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# The full profile's code path in a dry run: one batch per loader pass, one epoch per budget.
DRY_RUN     := CNNLIB_PROFILE=full CNNLIB_DRY_RUN=1
# Tests run in $(WORKERS) pytest-xdist processes; a notebook's cells stay together, in order, on one
# of them (--dist loadfile). The unit tests run one thread each, so the workers do not compete.
WORKERS     ?= 2
PARALLEL    := -n $(WORKERS)
# $(call timed,WHAT,COMMAND): run COMMAND and say how long it took.
timed        = start=$$(date +%s); $(2); rc=$$?; echo "[make test] $(1): $$(( $$(date +%s) - start )) s"; exit $$rc

.PHONY: lab test kernel setup data browser exercises grade execute unit notebooks portability dry-run bench clean

# The notebooks' kernel, registered again each time, so that it is this checkout's environment.
kernel: setup
	@$(PY) -m ipykernel install --user --name cnnlib --display-name "Python (cnnlib)" >/dev/null

# Jupyter refuses to run as root unless told: containers and CI machines often are root.
lab: kernel data
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

test:
	@$(call timed,set-up,$(MAKE) --no-print-directory setup data browser)
	@$(call timed,unit tests,$(MAKE) --no-print-directory unit)
	@$(call timed,notebooks under nbval,$(MAKE) --no-print-directory notebooks)
	@$(call timed,learner versions under a second numeric configuration,$(MAKE) --no-print-directory portability)
	@$(call timed,notebooks under the full profile's dry run,$(MAKE) --no-print-directory dry-run)

setup: $(STAMP)

# The venv, the requirements, cnnlib (editable), d2l 1.0.3 without its stale pins.
$(STAMP): requirements.txt pyproject.toml jupyter/overrides.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip install --quiet --no-deps d2l==1.0.3
	mkdir -p $(VENV)/share/jupyter/lab/settings && cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/
	$(PY) -c "import matplotlib.pyplot"  # builds matplotlib's font cache once, outside any notebook
	touch $@

# Offline data: seed data/ from a local copy of the official files when there is one;
# otherwise torchvision downloads them on first use.
data:
	@if [ -d "$(SHARED_DATA)" ]; then \
	  for f in $(DATA_FILES); do \
	    src="$(SHARED_DATA)/$${f#data/}"; \
	    if [ ! -f "$$f" ] && [ -f "$$src" ]; then mkdir -p "$$(dirname $$f)" && cp "$$src" "$$f"; fi; \
	  done; \
	fi

# The browser test of the widgets needs Chromium (Debian's package, as root) and Playwright.
# Where neither can be installed the test skips and says why. The test opens a lesson in the kernel.
browser: kernel
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser test will skip"; \
	fi

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
unit: setup data
	OMP_NUM_THREADS=1 CNNLIB_PROFILE=smoke $(PY) -m pytest tests -q $(PARALLEL) -m "not slow"

notebooks: setup data
	CNNLIB_PROFILE=smoke $(PY) -m pytest $(NBVAL) notebooks -q $(PARALLEL) --dist loadfile

# The lessons as learners get them (tests/test_learner_versions.py, marked slow), under the second numeric
# configuration: every compared output must come out the same, and each fails exactly at its exercises.
portability: setup data
	$(PORTABLE) CNNLIB_PROFILE=smoke $(PY) -m pytest tests/test_learner_versions.py -m slow -q $(PARALLEL)

# Outputs are not compared (--nbval-lax): the cells must run to the end, that is all. Lesson 06
# takes most of this part (the full recipe's ablation), so it goes first and the other worker runs
# the rest of the lessons beside it.
LONGEST_DRY_RUN := notebooks/06_bag_of_tricks.ipynb
dry-run: setup data
	$(DRY_RUN) $(PY) -m pytest --nbval-lax --nbval-current-env -q $(PARALLEL) --dist loadfile \
	  $(LONGEST_DRY_RUN) $(filter-out $(LONGEST_DRY_RUN),$(wildcard notebooks/0*.ipynb))

bench: setup data
	$(PY) benchmarks/vs_d2l.py

clean:
	rm -rf $(VENV) exercises
