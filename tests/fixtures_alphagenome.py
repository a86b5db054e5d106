"""Stand-in service fixtures (owned by the stand-in components)."""
