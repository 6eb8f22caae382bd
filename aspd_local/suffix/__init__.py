"""SuffixDecoding (arXiv 2411.04975): model-free speculation from token indexes over earlier text.

``index`` keeps token sequences searchable by suffix, ``proposer`` grows the best speculation
tree from the matches, ``cache`` persists the global index between runs.
"""

from .index import TokenIndex
from .proposer import DraftTree, SuffixProposer

__all__ = ["DraftTree", "SuffixProposer", "TokenIndex"]
