"""Tests of the LF-MMI denominator forward-backward (frugal.fsa.leaky_hmm).

References: the shared case with its independently computed objective and gradient
(/work/shared/bench), and a dense float64 leaky-HMM written here as a product of (S, S)
matrices, differentiated by autograd.
"""
import importlib.util
import io
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

from frugal.errors import FrugalError
from frugal.fsa.leaky_hmm import DenominatorGraph, denominator_log_likelihood, kaldi_initial_probs

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device on this machine")),
]


def random_graph(num_states, num_pdfs, arcs_per_state, generator, random_final=True):
    """Arcs in a shuffled order, including self-loops and parallel arcs with other pdfs."""
    src = torch.arange(num_states).repeat_interleave(arcs_per_state)
    dst = torch.randint(num_states, (src.numel(),), generator=generator)
    dst[::arcs_per_state] = torch.arange(num_states)  # one self-loop per state
    dst[1::arcs_per_state] = dst[2::arcs_per_state]  # a parallel arc per state
    pdf = torch.randint(num_pdfs, (src.numel(),), generator=generator)
    weight = torch.rand(src.numel(), generator=generator, dtype=torch.float64) + 0.1
    weight /= torch.zeros(num_states, dtype=torch.float64).index_add_(0, src, weight)[src]
    initial = torch.rand(num_states, generator=generator, dtype=torch.float64) + 0.05
    initial /= initial.sum()
    final = (torch.rand(num_states, generator=generator, dtype=torch.float64) if random_final
             else torch.ones(num_states, dtype=torch.float64))
    order = torch.randperm(src.numel(), generator=generator)
    return DenominatorGraph(src[order], dst[order], pdf[order], weight[order], initial, final,
                            num_states, num_pdfs)


def dense_log_likelihood(graph, nnet_output, lengths, leaky):
    """log(init K M_0 K M_1 ... K M_{L-1} K final) per sequence, in float64, where
    M_t(i, j) = sum of w * exp(x_t(pdf)) over arcs i -> j and K = I + leaky * 1 init^T
    adds leaky times the total mass in proportion to the initial probabilities."""
    num_states = graph.num_states
    init, final = graph.initial_probs.cpu(), graph.final_probs.cpu()
    leak = torch.eye(num_states, dtype=torch.float64) + leaky * torch.outer(
        torch.ones(num_states, dtype=torch.float64), init)
    src, dst, pdf = graph.arc_src.cpu(), graph.arc_dst.cpu(), graph.arc_pdf.cpu()
    weight = graph.arc_weight.cpu()
    result = []
    for b, length in enumerate(lengths.tolist()):
        row = init @ leak
        for t in range(length):
            probs = nnet_output[b, t].clamp(-30, 30).exp()
            trans = torch.zeros(num_states, num_states, dtype=torch.float64).index_put(
                (src, dst), weight * probs[pdf], accumulate=True)
            row = row @ trans @ leak
        result.append((row @ final).log())
    return torch.stack(result)


@pytest.fixture(scope="module")
def shared_case(shared_dir):
    bench = shared_dir / "bench"
    with np.load(bench / "den_case_small.npz") as case, \
            np.load(bench / "den_case_small_ref.npz") as ref:
        return {k: case[k] for k in case.files}, {k: ref[k] for k in ref.files}


@pytest.mark.parametrize("device", DEVICES)
def test_reproduces_shared_reference(shared_case, device):
    case, ref = shared_case
    graph = DenominatorGraph.from_npz(case)
    x = torch.from_numpy(case["nnet_output"]).to(device).requires_grad_()
    objective = denominator_log_likelihood(graph, x, torch.from_numpy(case["seq_lengths"]),
                                           float(case["leaky_hmm_coefficient"]))
    objective.backward()
    assert objective.item() == pytest.approx(float(ref["objective_f64"]), rel=1e-5)
    grad_diff = (x.grad.cpu() - torch.from_numpy(ref["grad"])).abs().max().item()
    assert grad_diff < 1e-5
    # every frame's occupation sums to one
    frame_sums = x.grad.sum(-1).cpu()
    assert torch.allclose(frame_sums, torch.ones_like(frame_sums), atol=1e-4)


def test_initial_probs_as_kaldi_computes_them(shared_case):
    case, _ = shared_case
    initial = kaldi_initial_probs(int(case["num_states"]), torch.from_numpy(case["arc_src"]),
                                  torch.from_numpy(case["arc_dst"]),
                                  torch.from_numpy(case["arc_log_weight"]).double().exp(),
                                  start_state=int(case["start_state"]))
    assert initial.sum().item() == pytest.approx(1.0, abs=1e-12)
    expected = torch.from_numpy(case["initial_log_probs"]).double()
    assert (initial.log() - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("leaky", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_dense_float64_leaky_hmm(device, leaky, dtype):
    generator = torch.Generator().manual_seed(int(leaky * 100) + 7)
    for trial in range(3):
        num_states, num_pdfs = 5 + trial, 4 + trial
        graph = random_graph(num_states, num_pdfs, 3, generator, random_final=trial > 0)
        lengths = torch.tensor([9, 6, 1, 0, 9][: 3 + trial])
        x64 = 2 * torch.randn(lengths.numel(), 9, num_pdfs, generator=generator,
                              dtype=torch.float64)
        # padded frames hold values that would overflow if they were used
        for b, length in enumerate(lengths.tolist()):
            x64[b, length:] = 1e4
        expected = dense_log_likelihood(graph, x64.requires_grad_(), lengths, leaky)
        expected.sum().backward()
        x = x64.detach().to(device=device, dtype=dtype).requires_grad_()
        got = denominator_log_likelihood(graph, x, lengths, leaky, reduction="none")
        got.sum().backward()
        tol = 1e-10 if dtype == torch.float64 else 1e-5
        assert got.dtype == dtype
        assert torch.allclose(got.double().cpu(), expected.detach(), rtol=tol, atol=tol)
        assert torch.allclose(x.grad.double().cpu(), x64.grad, atol=tol)
        for b, length in enumerate(lengths.tolist()):
            assert torch.all(x.grad[b, length:] == 0)
            sums = x.grad[b, :length].sum(-1).double().cpu()
            assert torch.allclose(sums, torch.ones_like(sums), atol=tol)


def test_gradcheck_float64_varied_lengths():
    generator = torch.Generator().manual_seed(3)
    graph = random_graph(4, 3, 3, generator)
    lengths = torch.tensor([5, 3, 0])  # all shorter than the 6 frames of the input
    x = torch.randn(3, 6, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda inp: denominator_log_likelihood(graph, inp, lengths, 0.2, reduction="none"), (x,))


def test_clamped_output_keeps_kaldi_derivative():
    """Outputs beyond +-30 are clamped in the objective; as in Kaldi the occupation is still
    passed back to them (it is what the clamped value would get)."""
    generator = torch.Generator().manual_seed(5)
    graph = random_graph(4, 3, 3, generator)
    x = torch.randn(1, 4, 3, generator=generator, dtype=torch.float64)
    x[0, 1, 2], x[0, 2, 0] = 55.0, -70.0
    clamped = x.clamp(-30, 30).requires_grad_()
    expected = dense_log_likelihood(graph, clamped, torch.tensor([4]), 0.1)
    expected.sum().backward()
    x.requires_grad_()
    got = denominator_log_likelihood(graph, x, None, 0.1)
    got.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert torch.allclose(x.grad, clamped.grad, atol=1e-12)
    assert x.grad[0, 1, 2] > 0.5


def test_arc_order_and_dtype_do_not_matter():
    generator = torch.Generator().manual_seed(11)
    graph = random_graph(30, 12, 6, generator)
    order = torch.argsort(graph.arc_dst)
    reordered = DenominatorGraph(graph.arc_src[order], graph.arc_dst[order], graph.arc_pdf[order],
                                 graph.arc_weight[order], graph.initial_probs, graph.final_probs)
    x = torch.randn(4, 40, 12, generator=generator)
    lengths = torch.tensor([40, 33, 40, 2])
    a = denominator_log_likelihood(graph, x, lengths, reduction="none")
    b = denominator_log_likelihood(reordered, x, lengths, reduction="none")
    c = denominator_log_likelihood(graph, x.double(), lengths, reduction="none")
    assert torch.allclose(a, b, rtol=1e-6)
    assert torch.allclose(a.double(), c, rtol=1e-6)


def test_graph_constructors_and_errors(shared_case, tmp_path):
    case, _ = shared_case
    from_npz = DenominatorGraph.from_npz(case)
    from_logs = DenominatorGraph.from_log_weights(
        torch.from_numpy(case["arc_src"]), torch.from_numpy(case["arc_dst"]),
        torch.from_numpy(case["arc_pdf"]), torch.from_numpy(case["arc_log_weight"]),
        torch.from_numpy(case["initial_log_probs"]))
    assert (from_logs.num_states, from_logs.num_pdfs, from_logs.num_arcs) == (500, 500, 5000)
    assert torch.equal(from_logs.arc_weight, from_npz.arc_weight)
    assert torch.all(from_logs.final_probs == 1)
    assert from_npz.to("cpu") is from_npz
    broken = dict(case)
    del broken["arc_pdf"]
    path = tmp_path / "broken.npz"
    np.savez(path, **broken)
    with pytest.raises(FrugalError, match="broken.npz: missing .*arc_pdf"):
        DenominatorGraph.from_npz(path)
    with pytest.raises(FrugalError, match="absent.npz: cannot read"):
        DenominatorGraph.from_npz(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="arc_dst out of range"):
        DenominatorGraph(torch.tensor([0]), torch.tensor([3]), torch.tensor([0]),
                         torch.tensor([1.0]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="seq_lengths"):
        denominator_log_likelihood(from_npz, torch.zeros(2, 3, 500), torch.tensor([3, 4]))


@pytest.fixture(scope="module")
def den_bench(repo_dir):
    path = repo_dir / "tools" / "bench" / "den_bench.py"
    spec = importlib.util.spec_from_file_location("den_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_make_case_and_run(den_bench, tmp_path):
    path = tmp_path / "tiny.npz"
    assert den_bench.main(["--make-case", "20", "200", "10", "3", "6", "1", str(path)]) == 0
    with np.load(path) as case:
        src = case["arc_src"]
        assert src.size == 200 and np.all(np.diff(src) >= 0)
        per_state = np.bincount(src, minlength=20)
        assert per_state.min() >= 8 and per_state.max() <= 12
        mass = np.bincount(src, weights=np.exp(case["arc_log_weight"].astype(np.float64)))
        assert np.allclose(mass, 1.0, atol=1e-6)
        initial = np.exp(case["initial_log_probs"].astype(np.float64))
        assert initial.sum() == pytest.approx(1, abs=1e-5)
        assert case["nnet_output"].shape == (3, 6, 10)
    # a reference beside the case, from the dense float64 implementation
    with np.load(path) as case:
        graph = DenominatorGraph.from_npz(case)
        x = torch.from_numpy(case["nnet_output"]).double().requires_grad_()
        expected = dense_log_likelihood(graph, x, torch.from_numpy(case["seq_lengths"]), 0.1)
    expected.sum().backward()
    np.savez(tmp_path / "tiny_ref.npz", objective_f64=expected.sum().item(),
             grad=x.grad.numpy().astype(np.float32))
    out = io.StringIO()
    with redirect_stdout(out):
        assert den_bench.main([str(path), "--repeats", "1", "--threads", "1"]) == 0
    lines = out.getvalue().strip().splitlines()
    match = re.fullmatch(r"fwd_ms=[\d.]+ fwdbwd_ms=[\d.]+ objective=(-?[\d.]+)", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) == pytest.approx(expected.sum().item(), rel=1e-5)
    ref_line = next(line for line in lines if line.startswith("reference tiny_ref.npz"))
    rel, grad_diff = re.search(r"relative difference (\S+)\); max \|grad - ref\| = (\S+)",
                               ref_line).groups()
    assert float(rel) < 1e-5 and float(grad_diff) < 1e-5
    assert den_bench.main(["--make-case", "20", "500", "10", "3", "6", "1", str(path)]) == 1
