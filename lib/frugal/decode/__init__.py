"""Decoding: the WFST beam search with lattices, decode jobs, alignment, scoring."""
from frugal.decode.decoder import DecodeResult, Decoder, DecoderConfig
from frugal.decode.graph import DecodingGraph

__all__ = ["Decoder", "DecoderConfig", "DecodingGraph", "DecodeResult"]
