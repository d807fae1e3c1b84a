"""Requests for link kinds this host's kernel lacks (dummy, ipvlan, vlan) and the others,
checked byte for byte against pyroute2's encoding of the same attributes: an independent
encoder of <linux/if_link.h>, so a wrong id, width or nesting shows up here."""
import pytest

pyroute2 = pytest.importorskip("pyroute2.netlink.rtnl.ifinfmsg")

from linx_core.netlink import codec
from linx_core.netlink.rtnl import link


def pyroute2_frame(attrs, index=0, flags=0, change=0):
    m = pyroute2.ifinfmsg()
    m["index"], m["flags"], m["change"] = index, flags, change
    m["attrs"] = attrs
    m["header"]["type"] = 16
    m["header"]["flags"] = codec.NLM_F_REQUEST | codec.NLM_F_CREATE | codec.NLM_F_EXCL
    m["header"]["sequence_number"] = 7
    m.encode()
    return bytes(m.data)


def ours(request):
    mtype, flags, body = request
    return codec.frame(mtype, flags | codec.NLM_F_REQUEST, 7, body)


def info(kind, data=None):
    attrs = [("IFLA_INFO_KIND", kind)]
    if data is not None:
        attrs.append(("IFLA_INFO_DATA", {"attrs": data}))
    return ("IFLA_LINKINFO", {"attrs": attrs})


@pytest.mark.parametrize("request_, attrs", [
    (lambda: link.add_request("d0", "dummy"), [("IFLA_IFNAME", "d0"), info("dummy")]),
    (lambda: link.add_request("br0", "bridge"), [("IFLA_IFNAME", "br0"), info("bridge")]),
    (lambda: link.add_request("iv0", "ipvlan", parent=3),
     [("IFLA_IFNAME", "iv0"), ("IFLA_LINK", 3), info("ipvlan", [("IFLA_IPVLAN_MODE", 1)])]),
    (lambda: link.add_request("iv1", "ipvlan", parent=3, mode="l2"),
     [("IFLA_IFNAME", "iv1"), ("IFLA_LINK", 3), info("ipvlan", [("IFLA_IPVLAN_MODE", 0)])]),
    (lambda: link.add_request("eth0.42", "vlan", parent=2, vlan_id=42),
     [("IFLA_IFNAME", "eth0.42"), ("IFLA_LINK", 2), info("vlan", [("IFLA_VLAN_ID", 42)])]),
    (lambda: link.add_request("mv0", "macvlan", parent=2, mode="private"),
     [("IFLA_IFNAME", "mv0"), ("IFLA_LINK", 2), info("macvlan", [("IFLA_MACVLAN_MODE", 1)])]),
    (lambda: link.add_request("d1", "dummy", mtu=9000, address="02:aa:bb:cc:dd:ee"),
     [("IFLA_IFNAME", "d1"), ("IFLA_MTU", 9000), ("IFLA_ADDRESS", "02:aa:bb:cc:dd:ee"), info("dummy")]),
])
def test_link_add_matches_pyroute2(request_, attrs):
    assert ours(request_()) == pyroute2_frame(attrs)


def test_veth_peer_matches_pyroute2():
    peer = {"attrs": [("IFLA_IFNAME", "v1")]}
    expected = pyroute2_frame([("IFLA_IFNAME", "v0"),
                               ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"),
                                                            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]})]})])
    assert ours(link.add_request("v0", "veth", peer="v1")) == expected


def test_set_matches_pyroute2():
    mtype, _, body = link.set_request(5, up=True, mtu=1400, master=7)
    m = pyroute2.ifinfmsg()
    m["index"], m["flags"], m["change"] = 5, 1, 1
    m["attrs"] = [("IFLA_MTU", 1400), ("IFLA_MASTER", 7)]
    m["header"]["type"], m["header"]["flags"], m["header"]["sequence_number"] = 16, 1, 7
    m.encode()
    assert codec.frame(mtype, codec.NLM_F_REQUEST, 7, body) == bytes(m.data)


def test_decode_pyroute2_encoded_link():
    """The other direction: what pyroute2 encodes, linx decodes to the same values."""
    raw = pyroute2_frame([("IFLA_IFNAME", "eth0.42"), ("IFLA_LINK", 2), ("IFLA_MTU", 1500),
                          info("vlan", [("IFLA_VLAN_ID", 42)])], index=9, flags=1)
    msg = codec.split(raw)[0]
    got = link.decode(msg.body)
    assert (got.index, got.name, got.parent, got.mtu, got.kind, got.data, got.up) == \
        (9, "eth0.42", 2, 1500, "vlan", {"id": 42}, True)
