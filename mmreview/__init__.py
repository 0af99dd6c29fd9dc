"""mmreview: review Linux mm / maple-tree patch series on a real kernel tree."""

__version__ = "0.1.0"
