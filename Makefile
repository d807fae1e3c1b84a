# make demo: set up everything on a fresh Debian machine (as root) and run the headline demo.
# make test: set up what the tests need and run them.
PYTHON ?= python3
VENV   := .venv
APT_PACKAGES := gcc make python3-venv python3-dev iproute2 nftables libcap2-bin util-linux \
                procps busybox-static kmod libseccomp-dev seccomp iputils-ping netcat-openbsd

.PHONY: demo test setup apt venv clean

setup: apt venv

apt:
	@if command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	else echo "make: no apt-get here; install $(APT_PACKAGES) yourself" >&2; fi

venv:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'

demo: setup
	@sh examples/demo.sh $(VENV)/bin/linx

test: setup
	$(VENV)/bin/python -m pytest -q -ra tests

clean:
	rm -rf $(VENV) build *.egg-info linx_core/_sys*.so linx_core/linx-agent
