"""bench/nft_reconcile: a one-rule change in a 10,000-rule table, in a throwaway netns:
`linx nft push --mode reconcile FILE` vs `nft -f FILE` (the whole table destroyed and
rebuilt, what replace means). Whole commands as a user runs them, best of N runs, with the
ratio, and the batch sizes in messages: reconcile's is O(changes), nft's O(rules).

    .venv/bin/python bench/nft_reconcile.py [runs]
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

LINX = os.path.join(os.path.dirname(sys.executable), "linx")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5
RULES = 10_000


def ruleset(port: int) -> str:
    """RULES tagged rules; the first one's port is the edit."""
    out = ["table inet bench", "delete table inet bench", "table inet bench {", "\tchain input {",
           "\t\ttype filter hook input priority 0; policy accept;",
           f'\t\ttcp dport {port} counter accept comment "tag:r0"']
    for i in range(1, RULES):
        out.append(f"\t\tip saddr 192.168.{i >> 8 & 255}.{i & 255} tcp dport "
                   f'{1024 + i % 60000} counter accept comment "tag:r{i}"')
    return "\n".join(out + ["\t}", "}"]) + "\n"


def best(argv_for_run, ns) -> float:
    out = None
    for k in range(RUNS):
        t = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, *argv_for_run(k)], check=True,
                       stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        out = dt if out is None else min(out, dt)
    return out


def main():
    from linx_core.netfilter import parser, patch, push, reconcile
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.TemporaryDirectory() as d:
            files = []
            for port in (22, 2222):
                p = os.path.join(d, f"r{port}.nft")
                with open(p, "w") as f:
                    f.write(ruleset(port))
                files.append(p)
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", files[0]], check=True)
            desired = parser.parse(ruleset(2222))
            _, _, p = reconcile.plan(desired, ns)
            n_reconcile = len(patch.messages(p, desired)[1])
            n_replace = len(push.plan(desired, ns))
            # each run flips the port, so every run is a one-rule change
            t_nft = best(lambda k: ["nft", "-f", files[(k + 1) % 2]], ns)
            t_linx = best(lambda k: [LINX, "nft", "push", "--mode", "reconcile",
                                     files[(k + 1 + RUNS) % 2]], ns)
            _, _, last = reconcile.plan(desired, ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print(f"{RULES} rules, one port changed; best of {RUNS}")
    print(f"  batch messages: reconcile {n_reconcile} ({p.summary()}), "
          f"replace {n_replace}")
    print(f"  nft -f (replace)          {t_nft * 1000:8.1f} ms")
    print(f"  linx push --mode reconcile {t_linx * 1000:7.1f} ms")
    print(f"  ratio linx/nft: {t_linx / t_nft:.2f}")
    assert n_reconcile == 1, n_reconcile
    del last


if __name__ == "__main__":
    main()
