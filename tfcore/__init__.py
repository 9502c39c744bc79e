"""tensor-fusion core library: pure logic first, I/O at the edges."""

__version__ = "0.1.0"
