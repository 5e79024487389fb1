"""The client's version, in a module of its own so the client and the CLI can name it without
importing the package they are part of."""

__version__ = "0.1.0"
