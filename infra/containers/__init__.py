"""Container images and the compose test driver (docs/compose.md)."""
