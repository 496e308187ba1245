"""The visual report: one self-contained HTML page showing what a file records."""
