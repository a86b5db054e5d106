"""Stand-in services and the synthetic world. NOT product code.

Nothing here is ever a source of real results. The stand-in AlphaGenome and
myvariant.info services compute their answers from the synthetic world's DNA
sequence; they never read a study's answers. Everything they produce is labelled
simulated, and agval writes runs against them under the simulated results root only.
"""

SIMULATED_DATA_SOURCE = "agval-standin (SIMULATED)"
