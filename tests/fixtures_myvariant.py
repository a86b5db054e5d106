"""Stand-in myvariant fixtures (owned by the allele-lookup component)."""
