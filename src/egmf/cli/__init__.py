"""The egmf command line."""
