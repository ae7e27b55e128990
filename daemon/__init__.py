"""The certmon daemon: settings, scheduler, state store, evaluator, exporter, CLI."""

__version__ = "0.1.0"
