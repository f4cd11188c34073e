"""The commands: one click group, one error handler, one module per command family."""
