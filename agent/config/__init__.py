"""Settings (config.toml, environment) and the live policy reload."""
