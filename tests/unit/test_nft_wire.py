"""The wire codec and the decoder, without a kernel: the fast encoders give the same bytes
as the generic attribute tables; every corpus rule survives compile -> encode -> decode ->
raise to statements -> compile again with identical kernel expressions (the kernel's part,
naming anonymous sets, is simulated); and random or mutated bytes give clean errors only
(hypothesis)."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from linx_core.netlink.errors import MalformedMessage
from linx_core.netfilter import compiler, decoder, encoder, listing, model as M, parser, wire
from nftoracle import CORPUS, compiled


@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_fast_encoders_match_the_tables(path):
    for m in compiled(path):
        if m.kind in ("newrule", "newsetelem"):
            table = wire.tables()[wire.MSG_TABLE[m.kind]]
            generic = encoder.nfgenmsg(encoder.family_id(m.family)) + table.encode(m.attrs)
            assert encoder.encode(m)[2] == generic


@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_fast_rule_decoder_matches_the_table(path):
    for m in compiled(path):
        if m.kind == "newrule":
            body = encoder.encode(m)[2]
            assert wire.decode_rule(body, 4) == wire.tables()["rule"].decode(body, 4)


def simulated_kernel(msgs):
    """What the kernel would hand back for these messages: decoded attributes, anonymous
    sets named __setN (rules find them by set id), elements attached to their set."""
    tables, sets, by_id, rules = {}, {}, {}, []
    n = 0
    for m in msgs:
        body = encoder.encode(m)[2]
        if m.kind == "newtable":
            tables[(m.family, m.attrs["name"])] = decoder.table(
                m.family, wire.tables()["table"].decode(body, 4))
        elif m.kind == "deltable" and "name" in m.attrs:
            del tables[(m.family, m.attrs["name"])]
        elif m.kind == "newchain":
            a = wire.tables()["chain"].decode(body, 4)
            tables[(m.family, a["table"])].chains[a["name"]] = decoder.chain(m.family, a)
        elif m.kind == "newset":
            a = wire.tables()["set"].decode(body, 4)
            if "%d" in a["name"]:
                a["name"] = a["name"].replace("%d", str(n))
                n += 1
            ks = decoder.KSet(a)
            sets.setdefault((m.family, a["table"]), {})[ks.name] = ks
            by_id[a["id"]] = ks
        elif m.kind == "newsetelem":
            a = wire.tables()["setelem"].decode(body, 4)
            by_id[a["set_id"]].elements.extend(a["elements"])
        elif m.kind == "newrule":
            a = wire.decode_rule(body, 4)
            for e in a["expressions"]:
                d = e["data"]
                for key, id_key in (("set", "set_id"), ("set_name", "set_id")):
                    if key in d and "%d" in d[key]:
                        d = dict(d)
                        d[key] = by_id[d[id_key]].name
                        e = {"name": e["name"], "data": d}
                rules.append((m.family, a, e))
            rules.append((m.family, a, None))
    return tables, sets, rules


def rule_listings(msgs):
    return [listing.rule_listing(m.family, m.attrs["table"], m.attrs["chain"], m.attrs)
            for m in msgs if m.kind == "newrule"]


@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_decode_then_compile_gives_the_same_expressions(path):
    msgs = compiled(path)
    tables, sets, flat = simulated_kernel(msgs)
    exprs = []
    for fam, a, e in flat:
        if e is not None:
            exprs.append(e)
            continue
        r = decoder.rule(fam, {**a, "expressions": exprs}, sets.get((fam, a["table"]), {}))
        tables[(fam, a["table"])].chains[a["chain"]].rules.append(r)
        exprs = []
    again = M.Ruleset(tables=tables)
    for key, t in tables.items():      # named sets and objects come back as the file has them
        src = parser.parse_file(path).tables[key]
        t.sets, t.objects, t.flowtables = src.sets, src.objects, src.flowtables
    assert sorted(rule_listings(compiler.compile(again, ifindex=lambda n: 1))) == \
        sorted(rule_listings(msgs))


def _sample_rule_bodies():
    out = []
    for path in CORPUS[:20]:
        for m in compiled(path):
            if m.kind == "newrule":
                out.append((m.family, encoder.encode(m)[2]))
    return out


SAMPLES = _sample_rule_bodies()


def decode_all(family, body):
    try:
        a = wire.decode_rule(body, 4)
        decoder.rule(family, a, {})
    except MalformedMessage:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_fuzz_random_bytes(raw):
    decode_all("inet", raw)
    try:
        wire.tables()["set"].decode(raw)
        wire.tables()["setelem"].decode(raw)
        wire.tables()["chain"].decode(raw)
    except MalformedMessage:
        pass


@settings(max_examples=600, deadline=None)
@given(st.integers(0, len(SAMPLES) - 1), st.integers(0, 10_000), st.integers(0, 255),
       st.integers(1, 4))
def test_decoder_fuzz_mutated_rules(which, pos, byte, count):
    family, body = SAMPLES[which]
    pos %= len(body)
    mutated = body[:pos] + bytes([byte]) * count + body[pos + count:]
    decode_all(family, mutated)
