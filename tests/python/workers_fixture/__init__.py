"""Record handlers for the worker tests, importable as ``workers_fixture.handlers``."""
