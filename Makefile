# The two commands of the course: `make lab` and `make test`.
# Both set up what they need (idempotently: a second run only checks stamps) and then run.

PYTHON      ?= python3
VENV        ?= .venv
SHARED_DATA ?= ../shared/data
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.cnnlib-installed
DATA_FILES  := $(foreach set,MNIST FashionMNIST,$(foreach f,train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte,data/$(set)/raw/$(f).gz))
NBVAL       := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: lab test setup data browser exercises grade unit notebooks bench clean

# Jupyter refuses to run as root unless told: containers and CI machines often are root.
lab: setup data
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

test: setup data browser
	CNNLIB_PROFILE=smoke $(PY) -m pytest tests -q
	CNNLIB_PROFILE=smoke $(PY) -m pytest $(NBVAL) notebooks -q

setup: $(STAMP)

# The venv, the requirements, cnnlib (editable), d2l 1.0.3 without its stale pins, the kernel.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip install --quiet --no-deps d2l==1.0.3
	$(PY) -m ipykernel install --user --name cnnlib --display-name "Python (cnnlib)" >/dev/null
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
# Where neither can be installed the test skips and says why.
browser: setup
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser test will skip"; \
	fi

# Learner versions of the lessons (solutions replaced by NotImplementedError, no verdicts stored).
exercises: setup
	$(PY) -m cnnlib.exercises notebooks exercises

# Grade a class: make grade SUBMISSIONS="hand-ins/" (notebooks or folders of them), into
# grades.csv and a Markdown report per submission in feedback/.
SUBMISSIONS ?= submissions
grade: setup data
	$(PY) -m cnnlib.grade $(SUBMISSIONS) --out grades.csv --feedback feedback

unit: setup data
	CNNLIB_PROFILE=smoke $(PY) -m pytest tests -q

notebooks: setup data
	CNNLIB_PROFILE=smoke $(PY) -m pytest $(NBVAL) notebooks -q

bench: setup data
	$(PY) benchmarks/vs_d2l.py

clean:
	rm -rf $(VENV) exercises
