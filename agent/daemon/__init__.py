"""The daemon: wiring, timers, signals, sd_notify, and the start-up and connection checks."""
