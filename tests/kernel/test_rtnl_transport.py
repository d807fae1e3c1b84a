"""The transport against the kernel: extended ACKs, pipelined requests, dumps, the netns a
socket is bound to, and the monitor's event stream."""
import errno
import json
import subprocess
import time

import pytest

from linx_core.netlink import codec, rtnl, transport
from linx_core.netlink.errors import NetlinkError
from linx_core.netlink.rtnl import link, monitor, route


@pytest.fixture
def sock(netns):
    with rtnl.open(netns) as s:
        yield s


def test_extended_ack_message_and_offset(sock):
    """A 20-byte IFLA_IFNAME fails the kernel's policy: the ext-ack text and the offset of
    the attribute in our request come back."""
    body = link.IFINFOMSG.pack(0, 0, 0, 0, 0) + link.IFLA.encode({"mtu": 1400, "ifname": "x" * 20})
    with pytest.raises(NetlinkError) as e:
        transport.talk(sock, link.RTM_NEWLINK, codec.NLM_F_CREATE | codec.NLM_F_EXCL, body,
                       op="link add", obj="x")
    assert e.value.errno == errno.ERANGE
    assert "policy" in e.value.detail.lower()
    assert e.value.offset == 16 + 8          # after ifinfomsg and the 8-byte IFLA_MTU
    assert str(e.value).startswith("netlink link add failed on x: ERANGE (errno 34): ")


def test_talk_many_results_per_request(sock, netns):
    subprocess.run(f"ip -n {netns} link add p0 type veth peer name p1 && ip -n {netns} link set p0 up "
                   f"&& ip -n {netns} addr add 10.1.0.1/16 dev p0", shell=True, check=True)
    reqs = [route.request("add", f"10.{2 + i // 256}.{i % 256}.0/24", via="10.1.0.2") for i in range(1500)]
    reqs[700] = reqs[1]                     # a duplicate
    results = transport.talk_many(sock, reqs, stop=False)
    assert len(results) == 1500
    assert [i for i, r in enumerate(results) if r is not None] == [700]
    assert results[700].errno == errno.EEXIST and results[700].index == 700
    shown = json.loads(subprocess.check_output(["ip", "-n", netns, "-j", "route", "show", "proto", "boot"]))
    assert len(shown) == 1499


def test_talk_many_reports_every_refusal_of_a_chunk(sock, netns):
    """Requests without NLM_F_ACK are answered only when refused: a chunk the kernel refuses
    whole still gives one error each (none dropped), and a refused last request ends it."""
    subprocess.run(f"ip -n {netns} link add p0 type veth peer name p1 && ip -n {netns} link set p0 up "
                   f"&& ip -n {netns} addr add 10.1.0.1/16 dev p0", shell=True, check=True)
    reqs = [route.request("add", f"10.2.{i}.0/24", via="10.1.0.2") for i in range(200)]
    assert transport.talk_many(sock, reqs) == [None] * 200
    results = transport.talk_many(sock, reqs * 3 + [reqs[0]], stop=False)
    assert [r.errno for r in results] == [errno.EEXIST] * 601
    assert [r.index for r in results] == list(range(601))


def test_talk_many_stops_after_the_failing_chunk(sock):
    bad = (link.RTM_NEWLINK, 0, link.IFINFOMSG.pack(0, 0, 99999, 0, 0))       # no such index
    good = link.add_request("s0", "bridge")
    results = transport.talk_many(sock, [bad, good, good], chunk_count=1)
    assert len(results) == 1 and results[0].errno == errno.ENODEV


def test_dump_of_many_messages_is_whole(sock, netns, tmp_path):
    with open(tmp_path / "batch", "w") as f:
        f.write("link add d0 type veth peer name d1\nlink set d0 up\naddr add 10.1.0.1/16 dev d0\n")
        for i in range(3000):
            f.write(f"route add 10.3.{i // 256}.{i % 256}/32 via 10.1.0.2\n")
    subprocess.run(["ip", "-n", netns, "-batch", str(tmp_path / "batch")], check=True)
    msgs = transport.dump(sock, route.RTM_GETROUTE, route.RTMSG.pack(2, 0, 0, 0, 254, 0, 0, 0, 0))
    assert len(msgs) == 3001                                    # + the connected 10.1/16
    assert len({m.seq for m in msgs}) == 1


def test_sockets_in_two_namespaces_are_independent(netns):
    other = netns + "-o"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        subprocess.run(["ip", "-n", other, "link", "add", "only-there", "type", "bridge"], check=True)
        with rtnl.open(netns) as a, rtnl.open(other) as b:
            assert "only-there" not in {l.name for l in link.list(a)}
            assert "only-there" in {l.name for l in link.list(b)}
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)


def _read_events(sock, until, timeout=10.0):
    import select
    got = []
    deadline = time.monotonic() + timeout
    events = monitor.events(sock)
    while time.monotonic() < deadline and not until(got):
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            got.append(next(events))
    return got


def test_monitor_sees_another_process(netns):
    with monitor.open(netns) as mon:
        subprocess.run(f"ip -n {netns} link add e0 type veth peer name e1 && "
                       f"ip -n {netns} addr add 10.11.0.1/24 dev e0", shell=True, check=True)
        got = _read_events(mon, lambda g: any(e.op == "new_addr" for e in g))
    adds = [e.resource for e in got if e.op == "new_addr"]
    assert adds and str(adds[0].address) == "10.11.0.1" and adds[0].prefixlen == 24
    assert {e.resource.name for e in got if e.op == "new_link"} >= {"e0", "e1"}


def test_monitor_flood_is_whole_or_says_resync(netns, tmp_path):
    with open(tmp_path / "flood", "w") as f:
        f.write("link add f0 type veth peer name f1\nlink set f0 up\naddr add 10.1.0.1/16 dev f0\n")
        for i in range(10000):
            f.write(f"route add 10.4.{i // 256}.{i % 256}/32 via 10.1.0.2\n")
    with monitor.open(netns, ("route",)) as mon:
        mon.sock.setsockopt(1, 8, 256 << 10)     # SO_RCVBUF small, to make loss likely
        mon.sock.setsockopt(1, 33, 256 << 10)    # ... even for root (SO_RCVBUFFORCE)
        subprocess.run(["ip", "-n", netns, "-batch", str(tmp_path / "flood")], check=True)

        def finished(g):
            return sum(e.op == "new_route" and e.resource.dst_len == 32 for e in g) >= 10000 or \
                any(e.op == monitor.RESYNC for e in g)
        got = _read_events(mon, finished, timeout=30)
    routes = sum(e.op == "new_route" and e.resource.dst_len == 32 for e in got)
    resync = any(e.op == monitor.RESYNC for e in got)
    assert routes == 10000 or resync
    assert resync    # with a 256 KiB buffer and no reader, 10k events cannot all fit
