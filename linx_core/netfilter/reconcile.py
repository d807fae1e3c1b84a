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
