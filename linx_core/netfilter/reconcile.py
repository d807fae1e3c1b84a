"""`linx nft push --mode reconcile`: GETGEN, pull, diff, and send only the patch, in one
batch that carries the generation it was computed from (NFNL_BATCH_GENID). If another
writer committed in between, the kernel refuses the whole batch with ERESTART
(nfnetlink_rcv_batch() checks the genid before it applies anything) and the cycle starts
again from a fresh pull, up to RETRIES times with exponential backoff.
"""
import errno as _errno
import time

from .. import target as _target
from ..errors import KernelError
from . import bulk, diff as _diff, model as M, patch as _patch, pull as _pull, push as _push

RETRIES = 3
BACKOFF = 0.05          # seconds, doubled after each refusal


class GenerationRace(KernelError):
    """Every attempt lost the race against another ruleset writer."""


def plan(ruleset, target=None):
    """(gen, current, patch): what a reconcile push would send now (`linx nft diff`).
    `current` holds only the tables the file names (or deletes)."""
    from ..netlink import nfnl
    t = target if isinstance(target, _target.Target) else _target.parse(target)
    with nfnl.open(t) as sock:
        gen = nfnl.getgen(sock)["id"]
    current = M.Ruleset()
    for key in dict.fromkeys([*ruleset.tables, *ruleset.deleted]):
        try:        # only the file's tables: others may hold what linx cannot decode
            current.tables.update(_pull.pull(t, key).tables)
        except KernelError as e:
            if e.errno != _errno.ENOENT:
                raise
    with bulk():
        return gen, current, _diff.diff(current, ruleset)


def reconcile(ruleset, target=None, *, before_commit=None) -> _patch.Patch:
    """Bring the tables `ruleset` names to it with the minimal patch; returns the patch
    sent (empty when already there). `before_commit(attempt)` runs between the pull and
    the commit (tests use it to play a concurrent writer)."""
    from ..netlink import nfnl
    _diff.validate_for_reconcile(ruleset)
    t = target if isinstance(target, _target.Target) else _target.parse(target)
    delay = BACKOFF
    for attempt in range(1 + RETRIES):
        gen, _, p = plan(ruleset, t)
        if p.empty:
            return p
        with bulk():
            msgs, wire_msgs = _target.run_in(
                t, ["net"], lambda: _patch.messages(p, ruleset, _push._ifindex))
        if before_commit is not None:
            before_commit(attempt)
        with nfnl.open(t) as sock:
            try:
                nfnl.batch(sock, wire_msgs, genid=gen)
                return p
            except nfnl.BatchError as e:
                if e.errno != _errno.ERESTART:
                    raise _push._located(e, msgs) from None
        if attempt < RETRIES:
            time.sleep(delay)
            delay *= 2
    raise GenerationRace("nft", "reconcile", "the ruleset", _errno.ERESTART,
                         f"another writer committed during each of {1 + RETRIES} attempts; "
                         "nothing applied")


# -- the [nft] section of a desired-state file (linx reconcile) -------------------------------

SECTION_KEYS = ("netns", "file", "ruleset")


class NftSource:
    """The tables a ruleset names, kept as written by reconcile pushes: a pass plans the
    minimal patch against a fresh pull (so a rule deleted by hand comes back on its own,
    and the untouched rules keep their handles and counters); tables the ruleset does not
    name are never read or touched. Leaving the file releases: the tables stay as they are,
    as a sysctl released without revert_on_release keeps its value."""

    def __init__(self, key: str, target, ruleset):
        self.key, self.target, self.ruleset = key, target, ruleset
        self.scope = f"nft in {target}"

    def subscribe(self):
        """Ruleset changes (NFNLGRP_NFTABLES) as wake-up hints."""
        from ..netlink import nfnl
        from ..reconcile import Hints
        from .monitor import NFNLGRP_NFTABLES
        sock = nfnl.open(self.target)
        sock.add_membership(NFNLGRP_NFTABLES)
        return Hints(sock)

    def plan(self, last_applied: dict) -> list:
        from ..reconcile import Op
        if self.ruleset is None:
            return []
        _, _, p = plan(self.ruleset, self.target)
        ops = []
        for o in p.ops:
            verb, _, obj = _patch.describe(o).partition(" ")
            ops.append(Op(_VERBS.get(verb, verb), obj, item=o))
        return ops

    def apply(self, ops: list, last_applied: dict):
        """One batch, all or nothing: a refusal fails the first op and leaves the rest pending
        (the pass is fail-fast, like net's)."""
        from ..errors import LinxError
        from ..reconcile import Report
        report = Report(self.key, last_applied=last_applied)
        if not ops:
            return report
        try:
            reconcile(self.ruleset, self.target)
        except LinxError as e:
            report.failed, report.pending = [(ops[0], e)], ops[1:]
            return report
        report.applied = list(ops)
        return report

    def released(self) -> "NftSource":
        return NftSource(self.key, self.target, None)


_VERBS = {"add": "create", "create": "create", "insert": "create", "replace": "update", "update": "update",
          "delete": "delete"}


def section(body, where: str, base: str) -> NftSource:
    """Validate [nft] (no syscall but reading the file): netns, and file (relative to the
    desired-state file) or ruleset; tagged rules, as push --mode reconcile needs."""
    import os

    from ..errors import UsageError
    from . import parser, validate
    if not isinstance(body, dict):
        raise UsageError(where, "expected a table")
    for key in body:
        if key not in SECTION_KEYS:
            raise UsageError(f"{where}.{key}", f"unknown key (expected one of {', '.join(SECTION_KEYS)})")
    if ("file" in body) == ("ruleset" in body):
        raise UsageError(where, "give exactly one of file or ruleset")
    target = _target.parse(body.get("netns"), f"{where}.netns")
    if "file" in body:
        name = os.path.join(base, str(body["file"]))
        try:
            with open(name) as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"{where}.file", f"cannot read {name}: {os.strerror(e.errno)}") from None
    else:
        text, name = str(body["ruleset"]), f"{where}.ruleset"
    ruleset = parser.parse(text, name)
    validate.validate(ruleset)
    _diff.validate_for_reconcile(ruleset)
    return NftSource("nft", target, ruleset)
