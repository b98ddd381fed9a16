# One command to set up and serve, one to set up and test. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint fuzz clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server,models]'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.server

serve: $(VENV)/.server
	$(BIN)/stratus serve $(ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench

# The console's browser tests (tests/console) drive Debian's Chromium through its WebDriver:
# installed here when missing (as root, with apt-get), or the test command stops and says so.
chromium:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	need="the console's browser tests need /usr/bin/chromium and /usr/bin/chromedriver"; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "$$need: apt-get is not available here, install Chromium and its WebDriver" \
			"(Debian: chromium chromium-driver) and run make test again" >&2; exit 1; fi; \
	echo "installing chromium chromium-driver: $$need" >&2; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y chromium chromium-driver \
		|| { apt-get update && apt-get install -y chromium chromium-driver; } \
		|| { echo "$$need: apt-get install -y chromium chromium-driver failed (run it as" \
			"root)" >&2; exit 1; }; \
	[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
		|| { echo "$$need: they are still missing after apt-get" >&2; exit 1; }

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: $(VENV)/.test lint chromium
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

# The API fuzz (tests/api/test_fuzz.py) with many more examples per operation than the test
# command runs: FUZZ_EXAMPLES=2000 to change it.
FUZZ_EXAMPLES ?= 500
fuzz: $(VENV)/.test
	STRATUS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/api/test_fuzz.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .stratus .pytest_cache .ruff_cache
