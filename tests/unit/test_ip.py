"""IP, Subnet and MAC value types (spec: Linx.IP, Linx.IP.Subnet, Linx.MAC)."""
import pytest

from linx_core.errors import UsageError
from linx_core.ip import AF_INET, AF_INET6, IP, MAC, Subnet


def test_ip_parse_and_render():
    assert str(IP("10.0.0.5")) == "10.0.0.5" and IP("10.0.0.5").family == AF_INET
    assert str(IP("fc00:0:0:0:0:0:0:1")) == "fc00::1" and IP("fc00::1").family == AF_INET6
    assert IP(b"\n\0\0\5") == IP("10.0.0.5") and IP(IP("::1")) == IP("::1")
    assert len({IP("1.2.3.4"), IP("1.2.3.4")}) == 1


@pytest.mark.parametrize("bad", ["10.0.0", "10.0.0.256", "fc00:::1", "", "eth0", "1.2.3.4/8"])
def test_ip_rejects(bad):
    with pytest.raises(UsageError) as e:
        IP(bad, "via")
    assert str(e.value).startswith("via: ")


def test_subnet_math():
    assert Subnet("10.0.0.0/8").contains("10.99.0.5")
    assert not Subnet("10.0.0.0/8").contains("11.0.0.1")
    assert not Subnet("10.0.0.0/8").contains("::1")            # families differ
    assert Subnet("10.0.42.5/24").network() == IP("10.0.42.0")
    assert Subnet("10.0.42.5/24").broadcast() == IP("10.0.42.255")
    assert Subnet("fc00::5/16").network() == IP("fc00::") and Subnet("fc00::/16").broadcast() is None
    assert Subnet("0.0.0.0/0").contains("8.8.8.8")
    assert str(Subnet("10.0.0.1")) == "10.0.0.1/32" and str(Subnet("::1")) == "::1/128"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.0/x", "10.0.0/24", "::/129", "a/1"])
def test_subnet_rejects(bad):
    with pytest.raises(UsageError):
        Subnet(bad)


def test_mac():
    assert str(MAC("02:AA:bb:cc:dd:ee")) == "02:aa:bb:cc:dd:ee"
    assert MAC("2-a-b-c-d-e").bytes == bytes([2, 10, 11, 12, 13, 14])
    for bad in ["02:aa:bb:cc:dd", "02:aa:bb:cc:dd:zz", "02:aa:bb:cc:dd:+e", "020:aa:bb:cc:dd:ee"]:
        with pytest.raises(UsageError):
            MAC(bad)
