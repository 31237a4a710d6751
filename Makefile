# The two commands of the README, and the rest. Each target sets itself up: `make sim` installs
# bwv alone (needs only python3), `make test` and `make lint` also the test tools and what
# pyaudio builds with.
SIM_OUT ?= sim-out
PY := .venv/bin/python

.PHONY: sim console test bench lint venv clean

venv:
	@scripts/bootstrap.sh

# bwv sim raid replaces an earlier raid's folder (saying so) and refuses any other non-empty one
sim: venv
	@.venv/bin/bwv sim raid --out $(SIM_OUT) --pre-record 10 --record 15
	@echo
	@echo "Each recording is an exhibit: $(SIM_OUT)/exhibits/<id>/ (MP4s, signed records, EXHIBIT.md)."
	@echo "Play one with:  ffplay $(SIM_OUT)/exhibits/<id>/<id>_0000.mp4   (or open it in a browser)"
	@echo "Check the evidence:  .venv/bin/bwv verify $(SIM_OUT)"
	@echo "Check one exhibit as an investigator would:"
	@echo "  .venv/bin/bwv verify $(SIM_OUT)/exhibits/<id> --device-pub $(SIM_OUT)/device/keys/device.key.pub"
	@echo "What the dock holds: .venv/bin/bwv dock status --store $(SIM_OUT)/dock"
	@echo "See it in the dock console (in a browser): make console"

# the dock console over sim-out's dock, on this machine (a raid first if there is none)
console: venv
	@.venv/bin/bwv sim console --out $(SIM_OUT)

test:
	@scripts/bootstrap.sh --with-test-tools
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: venv
	$(PY) -m bench

# ruff, and mypy on the product packages ([tool.mypy] in pyproject.toml: strict on the core)
lint:
	@scripts/bootstrap.sh --with-test-tools
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf .venv $(SIM_OUT) build .pytest_cache .ruff_cache .mypy_cache .hypothesis
