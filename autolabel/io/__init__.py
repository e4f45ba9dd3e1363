"""Low-level file and image I/O shared by every stage (below sources and formats)."""
