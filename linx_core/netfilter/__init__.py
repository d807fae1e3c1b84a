"""nf_tables: the nft language, the ruleset model, the compiler to kernel expressions, the
wire codec, and push/pull over nfnetlink (ARCHITECTURE.md, "nf_tables").

One module per stage, as nftables' own pipeline (src/libnftables.c):
tokenizer -> parser -> model (+ validate) -> compiler -> encoder -> nfnl batch, and back:
decoder -> model -> formatter.
"""
import contextlib
import gc


@contextlib.contextmanager
def bulk():
    """Pause the cyclic garbage collector. A big ruleset is hundreds of thousands of small
    objects and no reference cycles, and the collector would walk them over and over while
    they are built (two thirds of the time of a 10,000-rule push)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
