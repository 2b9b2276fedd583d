"""cogen: network programming with coroutines, and an HTTP/1.1 WSGI server built on it."""

__version__ = "1.0.0.dev0"
__all__ = ["__version__"]
