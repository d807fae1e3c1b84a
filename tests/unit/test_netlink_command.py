"""ip's grammar: what `linx net` and `linx net apply` accept, and the errors that name the
word (and FILE:LINE) at fault, all before any syscall."""
import pytest

from linx_core.errors import UsageError
from linx_core.ip import IP, Subnet
from linx_core.netlink import codec
from linx_core.netlink.rtnl import command, route


def parse(line, where=""):
    return command.parse(line.split(), where)


def test_route_add_request_equals_the_verbs_own():
    cmd = parse("route add 10.0.0.0/24 via 10.1.0.1 table 1000 proto 76 metric 5")
    assert cmd.args["via"] == IP("10.1.0.1") and cmd.args["table"] == 1000
    assert cmd.request == route.request("add", "10.0.0.0/24", via="10.1.0.1", table=1000,
                                        protocol=76, metric=5)
    mtype, flags, body = cmd.request
    assert flags == codec.NLM_F_CREATE | codec.NLM_F_EXCL
    decoded = route.decode(body)
    assert decoded.table == 1000 and decoded.header_table == 0 and decoded.protocol == 76


def test_aliases_and_defaults():
    assert str(parse("r a default via fd00::1")) == "route add"
    assert parse("route add default via fd00::1").request[2][0] == 10       # family from via
    assert parse("address add 10.0.0.1/24 dev x").args["subnet"] == Subnet("10.0.0.1/24")
    assert parse("neighbor add 10.0.0.2 lladdr 2:0:0:0:0:2 dev x").obj == "neigh"
    assert parse("link set dev v0 name v1 up").args == {"dev": "v0", "new_name": "v1", "up": True}
    assert parse("link add link eth0 name mv0 type macvlan mode private").args == \
        {"parent": "eth0", "name": "mv0", "kind": "macvlan", "mode": "private"}
    assert parse("rule add fwmark 0x10/0xff lookup 100 pref 5").request is not None


@pytest.mark.parametrize("line, where", [
    ("route add 10.0.0/24 via 10.0.0.1", "f:3: to"),
    ("route add 10.0.0.0/24 via fd00::1", "f:3: via"),
    ("route add 10.0.0.1/24 dev x", "f:3: to"),
    ("route add 10.0.0.0/24 metric -1", "f:3: metric"),
    ("route add 10.0.0.0/24 proto nosuch", "f:3: proto"),
    ("addr add 10.0.0.1/33 dev x", "f:3: address"),
    ("addr add 10.0.0.1/24", "f:3: dev"),
    ("link add x type nosuch", "f:3: type"),
    ("link add averyveryverylongname type bridge", "f:3: name"),
    ("link set v0 mtu big", "f:3: mtu"),
    ("neigh add 10.0.0.1 lladdr 02:00 dev x", "f:3: lladdr"),
    ("rule add from 10.0.0.0/8 to fd00::/8", "f:3: to"),
    ("route frobnicate", "f:3"),
    ("tunnel add x", "f:3"),
])
def test_bad_input_names_the_word(line, where):
    with pytest.raises(UsageError) as e:
        parse(line, "f:3")
    assert str(e.value).startswith(where + ":"), str(e.value)


def test_batch_parses_every_line_first():
    text = "# comment\nip route add 10.0.0.0/24 dev x\n\nroute add 10.0.1.0/24 via 10.0.0.1\nroute add bad\n"
    with pytest.raises(UsageError) as e:
        command.parse_batch(text, "routes.txt")
    assert str(e.value).startswith("routes.txt:5: ")
    cmds = command.parse_batch(text.rsplit("\n", 2)[0], "routes.txt")
    assert [c.where for c in cmds] == ["routes.txt:2", "routes.txt:4"]
    with pytest.raises(UsageError, match="^b:1: `route show` reads"):
        command.parse_batch("route show\n", "b")


def test_index_filled_in_at_send_time():
    cmd = parse("addr add 10.0.0.1/24 dev x")

    class Links:
        def index(self, name, what="interface"):
            return 42
    mtype, _, body = command.request(cmd, Links())
    assert int.from_bytes(body[4:8], "little") == 42
    rcmd = parse("route add 10.0.0.0/24 dev x")
    assert route.decode(command.request(rcmd, Links())[2]).oif == 42
