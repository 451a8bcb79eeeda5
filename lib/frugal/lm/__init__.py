"""n-gram language models: the phone LM of the LF-MMI denominator, word ARPA LMs."""
