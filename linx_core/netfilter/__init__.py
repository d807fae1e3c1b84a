"""nf_tables: the nft language, the ruleset model, the compiler to kernel expressions, the
wire codec, and push/pull over nfnetlink (ARCHITECTURE.md, "nf_tables").

One module per stage, as nftables' own pipeline (src/libnftables.c):
tokenizer -> parser -> model (+ validate) -> compiler -> encoder -> nfnl batch, and back:
decoder -> model -> formatter.
"""
