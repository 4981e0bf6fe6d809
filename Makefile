# Two commands on a fresh machine: `make app` and `make test`. `make lab` opens the notebooks.
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS  ?=

.PHONY: install test app lab export bench mutate clean

$(STAMP): settings.ini setup.py .ci/install.sh
	VENV=$(VENV) bash .ci/install.sh
	touch $(STAMP)

install: $(STAMP)

export: install
	$(VENV)/bin/nbdev_export

test: install
	VENV=$(VENV) bash .ci/test.sh

app: install
	$(PY) app/app.py $(ARGS)

# Jupyter refuses to run as root (the default user in containers) without --allow-root; bind to loopback only.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: install
	$(VENV)/bin/jupyter lab nbs --ip=127.0.0.1 $(ROOT_FLAG) $(ARGS)

# Known bugs put into a scratch copy, one at a time: every one must be caught (slow; not part of `make test`).
mutate: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} nice -n 10 $(PY) tests/mutate.py $(ARGS)

bench: install
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) _proc .pytest_cache
