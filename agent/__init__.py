"""mentor-agent: keeps the communication standards a student agreed with each mentor."""

__version__ = "0.1.0"
