"""linx nft monitor in a fresh netns: events from another process carry its pid, its name
and the new generation; snapshot + tail under a burst of 1,000 commits loses and repeats
nothing (checked against the final set as `nft -j` lists it); a full buffer is a
resync_needed event."""
import json
import queue
import subprocess
import threading
import time

from linx_core.netfilter import monitor

SET = "table inet m { set s { type inet_service; }; }\n"


def sh(ns, *args, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True,
                          timeout=60, check=True, **kw).stdout


def start(run_linx, ns):
    """`linx nft monitor --json --snapshot`, its lines read into a queue by a thread."""
    p = subprocess.Popen([run_linx.__globals__["LINX"], "nft", "monitor", "--json",
                          "--snapshot", "--netns", ns], stdout=subprocess.PIPE, text=True)
    p.lines = queue.Queue()
    threading.Thread(target=lambda: [p.lines.put(x) for x in p.stdout], daemon=True).start()
    return p


def lines(p, until, timeout=30):
    """Parsed lines of p's output up to and including the first for which until() holds."""
    out = []
    end = time.monotonic() + timeout
    while True:
        try:
            out.append(json.loads(p.lines.get(timeout=max(0.01, end - time.monotonic()))))
        except queue.Empty:
            raise AssertionError(f"monitor stopped or timed out after {out[-3:]}") from None
        if until(out[-1]):
            return out


def test_event_names_the_committing_process_and_generation(netns, run_linx):
    p = start(run_linx, netns)
    try:
        snap = lines(p, lambda d: d["op"] == "snapshot")[0]
        nft = subprocess.Popen(["ip", "netns", "exec", netns, "nft", "add", "table", "ip",
                                "x"])
        assert nft.wait(30) == 0
        evs = lines(p, lambda d: d["op"] == "new_gen")
    finally:
        p.terminate()
        p.wait(10)
    assert [(e["op"], e.get("name")) for e in evs] == [("new_table", "x"), ("new_gen", None)]
    for e in evs:
        assert (e["gen"], e["pid"], e["proc"]) == (snap["gen"] + 1, nft.pid, "nft")


def test_snapshot_and_tail_lose_and_repeat_nothing_under_a_burst(netns, run_linx):
    sh(netns, "nft", "-f", "-", input=SET)
    burst = [f"add element inet m s {{ {i} }}\n" for i in range(1, 1001)]
    writer = subprocess.Popen(["ip", "netns", "exec", netns, "nft", "-i"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)

    def write():                  # one commit about every millisecond, for about a second
        for line in burst:
            writer.stdin.write(line)
            writer.stdin.flush()
            time.sleep(0.001)
        writer.stdin.close()
    feeder = threading.Thread(target=write)
    feeder.start()
    time.sleep(0.05)
    p = start(run_linx, netns)    # subscribes and snapshots in the middle of the burst
    try:
        feeder.join(60)
        assert writer.wait(60) == 0
        final = json.loads(sh(netns, "nft", "-j", "list", "set", "inet", "m", "s"))
        want = sorted(next(x["set"] for x in final["nftables"] if "set" in x)["elem"])
        assert want == list(range(1, 1001))
        out = lines(p, lambda d: d["op"] == "new_set_element" and d["elements"] == ["1000"]
                    or d["op"] == "snapshot" and "1000" in d["tables"][0]["sets"][0]["elements"])
    finally:
        p.terminate()
        p.wait(10)
    assert out[0]["op"] == "snapshot"
    seen = [int(e) for e in out[0]["tables"][0]["sets"][0]["elements"]]
    gens = [out[0]["gen"]]
    for e in out[1:]:
        assert e["op"] in ("new_set_element", "new_gen")
        assert e["gen"] > out[0]["gen"]
        if e["op"] == "new_set_element":
            seen += [int(x) for x in e["elements"]]
        else:
            assert e["gen"] > gens[-1]
            gens.append(e["gen"])
    assert sorted(seen) == want                   # nothing lost, nothing twice


def test_full_buffer_is_resync_needed(netns):
    with monitor.Monitor(netns, rcvbuf=4096) as m:
        rules = "".join(f"add rule inet m c tcp dport {i} accept\n" for i in range(300))
        sh(netns, "nft", "-f", "-", input="add table inet m; add chain inet m c\n" + rules)
        evs = m.events()
        assert next(evs).op == "resync_needed"
