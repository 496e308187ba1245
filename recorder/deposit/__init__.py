"""From rig to repository: RO-Crate + REMBI packages as JSON-LD, and the facility catalog."""
