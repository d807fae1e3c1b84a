"""The nft binary as the oracle for the corpus in tests/data/nft: shared by the host's oracle
tests (tests/kernel/test_nft_oracle.py) and the VM group's (tests/vm/test_vm_nft.py), which
loads the files this host's kernel refuses.

Files may say, in a first-line comment, `linx-test: golden-only` (the host's kernel lacks the
feature) or `linx-test: state-only` (delete/flush commands: linx applies them to the file's
model, nft sends them, so only the final state compares)."""
import glob
import os
import re
import subprocess

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "nft")
CORPUS = sorted(glob.glob(os.path.join(DATA, "*.nft")))


def compiled(path) -> list:
    """The compiler's messages for a corpus file (interface names resolve to index 1)."""
    from linx_core.netfilter import compiler, parser
    return compiler.compile(parser.parse_file(path), ifindex=lambda n: 1)


def marker(path) -> str:
    with open(path) as f:
        first = f.readline()
    m = re.search(r"linx-test: (\S+)", first)
    return m.group(1) if m else ""


def nft(ns, *args, check=True) -> str:
    """`nft ARGS` inside the named netns `ns` (never the host's ruleset); its stdout."""
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], capture_output=True,
                       text=True, timeout=60)
    if check and r.returncode:
        raise AssertionError(f"nft {' '.join(args)}: {r.stderr}")
    return r.stdout


def without_expiry(text: str) -> str:
    """A listing without the expiry countdowns of timed elements."""
    return re.sub(r" expires \S+", "", text)


def listing_of(ns) -> str:
    """nft list ruleset, without the expiry countdowns of timed elements."""
    return without_expiry(nft(ns, "list", "ruleset"))
