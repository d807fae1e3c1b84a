"""linx_core: the library behind the linx command line. No CLI code, no printing."""
__version__ = "0.1.0"
