"""Lexicons, phone sets, symbol tables and CTC units (characters, BPE)."""
