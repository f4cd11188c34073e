"""The student's busy times from .ics files and URLs."""
