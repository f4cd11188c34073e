"""Pure rules: values in, values out, `now` passed in. No I/O (enforced by import-linter)."""
