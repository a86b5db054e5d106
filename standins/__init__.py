"""Stand-in services and the synthetic world. NOT product code.

Nothing here is ever a source of real results. The stand-in AlphaGenome and
myvariant.info services compute their answers from the synthetic world's DNA
sequence; they never read a study's answers. Everything they produce is labelled
simulated, and agval writes runs against them under the simulated results root only.
"""

from agval.provenance import SIMULATED_DATA_SOURCE  # noqa: F401  (the library owns the label)
