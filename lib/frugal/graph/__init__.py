"""Decoding and training graphs over OpenFst (kaldifst): L, G, CTC and HMM topologies, context, HLG/HCLG."""
