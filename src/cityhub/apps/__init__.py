"""Applications: each a plug-in registered under the entry-point group ``cityhub.apps``."""
