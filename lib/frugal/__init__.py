__version__ = "0.1.0"


def _resolve_vector_math_dispatch() -> None:
    """Call torch's MKL vector-math functions once each, single-threaded, before any real use.

    oneMKL 2024.2 (torch 2.13's CPU wheels) picks each VML function's kernel lazily on its
    first call; when intra-op threads make that first call concurrently, a thread's chunk can
    run the low-accuracy kernel (pytorch/pytorch#188792): the first float64 exp of a process
    was off by 1e-9 relative (1e-4 in float32) in about one run in three, so den graphs and
    trainings differed from run to run. One 1-element call per function and dtype settles
    the dispatch; later calls are bitwise unchanged.
    """
    import torch

    for dtype in (torch.float32, torch.float64):
        x = torch.full((1,), 0.5, dtype=dtype)
        for op in (torch.exp, torch.expm1, torch.log, torch.log1p, torch.log2, torch.log10, torch.sqrt,
                   torch.rsqrt, torch.tanh, torch.sigmoid, torch.sin, torch.cos, torch.erf, torch.erfc,
                   torch.reciprocal):
            op(x)


_resolve_vector_math_dispatch()
