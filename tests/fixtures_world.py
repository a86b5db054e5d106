"""World fixtures (owned by the synthetic-world component)."""
