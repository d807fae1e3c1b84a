# make demo: set up everything on a fresh Debian machine (as root) and run the headline demo.
# make test: set up what the tests need and run them.
PYTHON ?= python3
VENV   := .venv
APT_PACKAGES := gcc make python3-venv python3-dev iproute2 nftables libcap2-bin util-linux \
                procps busybox-static kmod libseccomp-dev seccomp iputils-ping netcat-openbsd \
                man-db bash-completion zsh fish strace runc crun

.PHONY: demo test test-vm bench-vm vm-apt setup apt venv docs install-docs clean

setup: apt venv install-docs

apt:
	@if command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	else echo "make: no apt-get here; install $(APT_PACKAGES) yourself" >&2; fi

venv:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	@# compat: a plain path line in a .pth; the default editable finder costs ~15 ms of every start
	$(VENV)/bin/python -m pip install -q --config-settings editable_mode=compat -e '.[test]'
	@# bytecode now: an editable install writes none, and PYTHONDONTWRITEBYTECODE may forbid it later
	@$(VENV)/bin/python -m compileall -q linx_core linx_cli $(VENV)/lib >/dev/null || true
	@ln -sf $(CURDIR)/$(VENV)/bin/linx /usr/local/bin/linx   # `linx` on PATH for people (and completions)

# Regenerate man/ and completions/ from the command definitions (checked in; a test compares).
docs:
	$(VENV)/bin/python -m linx_cli._docs

# pip install -e installs no data files (PEP 660), so link the checked-in pages and completions
# where man, bash-completion, zsh and fish look (pip install . puts them in the venv's share/).
SHARE := /usr/local/share
install-docs:
	@mkdir -p $(SHARE)/man/man1 $(SHARE)/man/man5 $(SHARE)/bash-completion/completions \
	  $(SHARE)/zsh/site-functions /etc/fish/completions
	@find $(SHARE)/man -lname '$(CURDIR)/man/*' -delete
	@ln -sf $(CURDIR)/man/*.1 $(SHARE)/man/man1/ && ln -sf $(CURDIR)/man/*.5 $(SHARE)/man/man5/
	@ln -sf $(CURDIR)/completions/linx.bash $(SHARE)/bash-completion/completions/linx
	@ln -sf $(CURDIR)/completions/_linx $(SHARE)/zsh/site-functions/_linx
	@ln -sf $(CURDIR)/completions/linx.fish /etc/fish/completions/linx.fish

demo: setup
	@sh examples/demo.sh $(VENV)/bin/linx

test: setup vm-apt
	$(VENV)/bin/python -m pytest -q -ra tests
	$(VENV)/bin/python tests/vm/run.py --auto   # the VM group: here if this kernel has all it needs, else in qemu

# make test-vm: the VM test group (tests/vm/) booted once under a stock Debian kernel in qemu.
VM_APT_PACKAGES := qemu-system-x86 udev
vm-apt:
	@command -v apt-get >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends $(VM_APT_PACKAGES) >/dev/null || echo "make: $(VM_APT_PACKAGES) not installed" >&2

test-vm: setup vm-apt
	$(VENV)/bin/python tests/vm/run.py

# make bench-vm: bench/spec.py (linx vs runc and crun) in the same VM, on whole cgroup v2.
bench-vm: setup vm-apt
	$(VENV)/bin/python tests/vm/run.py --bench bench/spec.py

clean:
	rm -rf $(VENV) build *.egg-info linx_core/_sys*.so linx_core/linx-agent
