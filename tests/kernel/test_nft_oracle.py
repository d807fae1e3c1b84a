"""The nft binary as the oracle, over the corpus in tests/data/nft, each file in a fresh
network namespace (never the host's ruleset):

- push: what `linx nft push F` installs lists (`nft list ruleset`) exactly as what
  `nft -f F` installs;
- pull: `linx nft pull` prints exactly what `nft list ruleset` prints for a state made by
  `nft -f F`;
- compiler golden check: each rule's kernel expressions equal what `nft --debug=netlink`
  prints for the same file (libnftnl's listing), also for constructs this kernel lacks
  (flowtables, NFQUEUE), which nft prints before the kernel refuses them.

The files' `linx-test:` markers and the oracle helpers are in tests/nftoracle.py; the
golden-only files are loaded for real in the VM group (tests/vm/test_vm_nft.py)."""
import os
import re
import subprocess

import pytest

from linx_core.netfilter import formatter, listing, parser, pull, push, validate
from nftoracle import CORPUS, DATA, listing_of, marker, nft, without_expiry

HDR = re.compile(r"^(ip|ip6|inet|arp|bridge|netdev) (\S+) (\S+)$")


def load(path):
    rs = parser.parse_file(path)
    validate.validate(rs)
    return rs


ORACLE = [p for p in CORPUS if marker(p) != "golden-only"]
GOLDEN = [p for p in CORPUS if marker(p) != "state-only"]


@pytest.mark.parametrize("path", ORACLE, ids=os.path.basename)
def test_push_lists_like_nft(netns, path):
    nft(netns, "-I", DATA, "-f", path)
    expected = listing_of(netns)
    nft(netns, "flush", "ruleset")
    push.push(load(path), netns)
    assert listing_of(netns) == expected


@pytest.mark.parametrize("path", ORACLE, ids=os.path.basename)
def test_pull_prints_like_nft(netns, path):
    nft(netns, "-I", DATA, "-f", path)
    expected = listing_of(netns)
    got = without_expiry(formatter.format_ruleset(pull.pull(netns)))
    assert got == expected


def nft_rule_listings(ns, path) -> list:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-I", DATA, "-c",
                          "--debug=netlink", "-f", path], capture_output=True, text=True,
                         timeout=60).stdout
    blocks, cur = [], None
    for line in out.splitlines():
        if HDR.match(line):
            cur = [line]
            blocks.append(cur)
        elif cur is not None and (line.startswith("  [") or line.startswith("  userdata")):
            cur.append(line)
        else:
            cur = None
    return sorted("\n".join(b) for b in blocks)


@pytest.mark.parametrize("path", GOLDEN, ids=os.path.basename)
def test_compiler_matches_nft_debug_netlink(netns, path):
    expected = nft_rule_listings(netns, path)
    msgs = push.plan(load(path), netns)
    got = sorted(listing.rule_listing(m.family, m.attrs["table"], m.attrs["chain"], m.attrs)
                 for m in msgs if m.kind == "newrule")
    assert got == expected
