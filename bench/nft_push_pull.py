"""bench/nft_push_pull: a 10,000-rule ruleset with a 10,000-element set, in a throwaway
netns: `linx nft push` vs `nft -f`, and `linx nft pull` vs `nft list ruleset` (into
/dev/null and into a pipe), whole commands as a user runs them, best of N runs, with the
ratio. Targets: push <= 1.5x, pull <= 2x.

    .venv/bin/python bench/nft_push_pull.py [runs] [--profile]
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

LINX = os.path.join(os.path.dirname(sys.executable), "linx")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5


def ruleset() -> str:
    out = ["flush ruleset", "table inet bench {", "\tset blocked {", "\t\ttype ipv4_addr",
           "\t\telements = { " + ", ".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                                          for i in range(1, 10_001)) + " }",
           "\t}", "\tchain input {", "\t\ttype filter hook input priority 0; policy accept;",
           "\t\tip saddr @blocked drop"]
    for i in range(9_999):
        out.append(f"\t\tip saddr 192.168.{i >> 8 & 255}.{i & 255} tcp dport {1024 + i % 60000}"
                   f" counter accept")
    out += ["\t}", "}"]
    return "\n".join(out) + "\n"


def timed(argv, ns, stdout=subprocess.DEVNULL) -> float:
    best = None
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, *argv], stdout=stdout, check=True)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


def piped(argv, ns) -> float:
    """Time with stdout into a pipe a reader drains (as `... | wc -l` would)."""
    best = None
    for _ in range(RUNS):
        t = time.perf_counter()
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE)
        p.stdout.read()
        p.wait()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


def main():
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".nft", dir="/tmp") as f:
            f.write(ruleset())
            f.flush()
            nft_push = timed(["nft", "-f", f.name], ns)
            linx_push = timed([LINX, "nft", "push", f.name], ns)
            nft_null = timed(["nft", "list", "ruleset"], ns)
            nft_pipe = piped(["nft", "list", "ruleset"], ns)
            linx_null = timed([LINX, "nft", "pull"], ns)
            linx_pipe = piped([LINX, "nft", "pull"], ns)
            print(f"10,000 rules + 10,000-element set, best of {RUNS}")
            print(f"push: linx {linx_push:.3f}s  nft -f {nft_push:.3f}s  "
                  f"ratio {linx_push / nft_push:.2f} (target <= 1.5)")
            print(f"pull to /dev/null: linx {linx_null:.3f}s  nft list {nft_null:.3f}s  "
                  f"ratio {linx_null / nft_null:.2f} (target <= 2)")
            print(f"pull into a pipe:  linx {linx_pipe:.3f}s  nft list {nft_pipe:.3f}s  "
                  f"ratio {linx_pipe / nft_pipe:.2f} (target <= 2)")
            if "--profile" in sys.argv:
                profile(f.name, ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def profile(path, ns):
    """Where push and pull spend their time, in-process (cProfile, top 15 by total)."""
    import cProfile
    import pstats
    from linx_core.netfilter import formatter, parser, pull, push, validate
    front_half(path)
    back_half(path, ns)
    pull_stages(ns)
    code = ("rs = parser.parse_file(path); validate.validate(rs); push.push(rs, ns)",
            "formatter.format_ruleset(pull.pull(ns))")
    for c in code:
        pr = cProfile.Profile()
        pr.runctx(c, globals(), {"parser": parser, "validate": validate, "push": push,
                                 "pull": pull, "formatter": formatter, "path": path, "ns": ns})
        print(f"\n--- {c}")
        pstats.Stats(pr).sort_stats("tottime").print_stats(15)


def front_half(path):
    """Push's front half in-process, stage by stage (best of RUNS, no profiler): the
    tokenizer alone, parse_file (tokenizer included), validate. Target: parse + validate
    <= 0.25 s. CPU time of this process, so that a busy machine does not count."""
    from linx_core.netfilter import bulk, parser, tokenizer, validate
    from linx_core.netfilter.location import Source
    with open(path) as f:
        text = f.read()

    def best(fn):
        times = []
        for _ in range(RUNS):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        return min(times)

    with bulk():
        tok = best(lambda: tokenizer.tokenize(Source(path, text)))
    parse = best(lambda: parser.parse_file(path))
    rs = parser.parse_file(path)
    check = best(lambda: validate.validate(rs))
    print(f"\nfront half: tokenize {tok:.3f}s  parse (with tokenize) {parse:.3f}s  "
          f"validate {check:.3f}s  total {parse + check:.3f}s CPU (target <= 0.25)")



_BACK_HALF = """
import sys, time
from linx_core.netfilter import bulk, encoder, parser, push, validate
from linx_core.netlink import nfnl
rs = parser.parse_file(sys.argv[1])
validate.validate(rs)
t0 = time.process_time()
msgs = push.plan(rs, sys.argv[2])
t1 = time.process_time()
with bulk():
    wire = encoder.encode_all(msgs)
t2 = time.process_time()
with nfnl.open(sys.argv[2]) as sock:
    nfnl.batch(sock, wire)
t3 = time.process_time()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def back_half(path, ns):
    """Push's back half stage by stage: compile (in the target netns), encode, send (the
    kernel's work on the batch included). Each run in a fresh process, as `linx nft push`
    runs (the compiler's and encoder's caches start empty); best of RUNS, CPU time.
    Target: <= 0.45 s together."""
    runs = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", _BACK_HALF, path, ns], check=True,
                             capture_output=True, text=True).stdout
        runs.append(tuple(map(float, out.split())))
    comp, enc, send = (min(r[i] for r in runs) for i in range(3))
    print(f"\nback half: compile {comp:.3f}s  encode {enc:.3f}s  send {send:.3f}s  "
          f"total {comp + enc + send:.3f}s CPU (target <= 0.45)")


def pull_stages(ns):
    """Pull in-process, stage by stage (best of RUNS, CPU time, no profiler): the dumps
    decoded into the model, then the text. Target: <= 0.6 s together."""
    from linx_core.netfilter import bulk, formatter, pull
    times = {"pull": [], "format": []}
    for _ in range(RUNS):
        t = time.process_time()
        rs = pull.pull(ns)
        times["pull"].append(time.process_time() - t)
        t = time.process_time()
        with bulk():
            formatter.format_ruleset(rs)
        times["format"].append(time.process_time() - t)
    got, text = min(times["pull"]), min(times["format"])
    print(f"\npull: dump + decode {got:.3f}s  format {text:.3f}s  total {got + text:.3f}s CPU "
          f"(target <= 0.6)")


if __name__ == "__main__":
    main()
