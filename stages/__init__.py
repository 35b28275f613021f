"""Stage logic of auxreid and the library the stages share."""

__version__ = "0.1.0"
