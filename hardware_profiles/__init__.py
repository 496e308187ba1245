"""Hardware profiles shipped with nbo-recorder (YAML data only)."""
