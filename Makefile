# genlab: `make demo` installs everything and runs the main job; `make test` installs the test
# dependencies and runs the tests. torch is installed first and pinned (the CPU build on these
# machines); if a torch is already importable (e.g. your CUDA build) it is kept.
PY ?= python3
PIP = $(PY) -m pip

.PHONY: install install-test demo test bench

install:
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e .

install-test:
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[test]"

demo: install
	$(PY) -m genlab.cli bench quick --out runs/bench

test: install-test
	$(PY) -m pytest -q tests
