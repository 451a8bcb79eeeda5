"""Input normalisation (CMN), SpecAugment masking and frame-shift augmentation of the acoustic models."""
import copy

import pytest
import torch

from frugal.models import TdnnfModel, build_model, tdnnf_config
from frugal.models.frame_shift import random_frame_shifts, shift_frames
from frugal.models.input_norm import utterance_mean_normalize
from frugal.models.spec_augment import SpecAugmentConfig, spec_augment


def test_utterance_mean_normalize_uses_valid_frames_only():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 4])
    y = utterance_mean_normalize(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        # reference: numpy-style mean over the first n frames
        ref = x[b, :n] - x[b, :n].sum(0) / n
        assert torch.allclose(y[b, :n], ref)
        assert torch.equal(y[b, n:], x[b, n:])  # padding untouched
        assert torch.allclose(y[b, :n].mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)


def test_cmn_model_ignores_a_constant_offset_and_padding():
    torch.manual_seed(1)
    model = TdnnfModel(tdnnf_config("tdnnf-small", feat_dim=5, num_pdfs=4, input_norm="utterance_mean")).eval()
    torch.nn.init.normal_(model.chain_head.output.weight)  # zero-initialised: make outputs depend on input
    x = torch.randn(1, 20, 5)
    out, _, _ = model(x, torch.tensor([20]))
    shifted, _, _ = model(x + torch.tensor([3.0, -1.0, 0.5, 2.0, -4.0]), torch.tensor([20]))
    assert torch.allclose(out, shifted, atol=1e-4)
    padded = torch.cat([x, torch.full((1, 9, 5), 7.0)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 29, 5)])
    out_b, _, lens = model(batch, torch.tensor([20, 29]))
    assert lens.tolist() == [7, 10]
    assert torch.allclose(out_b[0, :7], out[0], atol=1e-4)


def test_spec_augment_masks_bands_and_spans_within_limits():
    torch.manual_seed(2)
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=4, time_masks=2, time_width=6, time_ratio=0.2)
    x = torch.ones(50, 40, 20)
    lengths = torch.randint(10, 41, (50,))
    y = spec_augment(x, lengths, cfg)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    for b in range(50):
        zero_bins = (y[b] == 0).all(dim=0)  # masked over all frames: a frequency band
        zero_frames = (y[b] == 0).all(dim=1)
        assert int(zero_bins.sum()) <= 2 * 4
        assert int(zero_frames.sum()) <= 2 * min(6, int(0.2 * lengths[b]))
        assert not zero_frames[int(lengths[b]):].any()  # time masks stay inside the utterance
    # something is masked somewhere, and masks differ between utterances
    assert (y == 0).any() and not torch.equal(y[0], y[1])
    assert torch.equal(spec_augment(x, lengths, SpecAugmentConfig()), x)


def test_spec_augment_only_in_training_and_reproducible_from_the_seed():
    cfg = tdnnf_config("tdnnf-small", feat_dim=20, num_pdfs=4, specaug_freq_masks=2, specaug_time_masks=2)
    torch.manual_seed(3)
    model = TdnnfModel(cfg)
    torch.nn.init.normal_(model.chain_head.output.weight)
    x, lens = torch.randn(2, 60, 20), torch.tensor([60, 45])
    model.eval()
    model.set_dropout_active(True, 0.0)  # Monte-Carlo dropout mode: still no masking
    a, _, _ = model(x, lens)
    b, _, _ = model(x, lens)
    assert torch.equal(a, b)
    model.set_dropout_active(False)
    model.train()
    torch.manual_seed(7)
    c, _, _ = model(x, lens)
    torch.manual_seed(7)
    d, _, _ = model(x, lens)
    torch.manual_seed(8)
    e, _, _ = model(x, lens)
    assert torch.equal(c, d) and not torch.allclose(c, e)


def test_shift_frames_against_a_loop():
    torch.manual_seed(4)
    x = torch.randn(3, 9, 2, dtype=torch.float64)
    lengths = torch.tensor([9, 5, 1])
    shifts = torch.tensor([2, 1, 2])
    y = shift_frames(x, lengths, shifts)
    for b in range(3):
        n, s = int(lengths[b]), int(shifts[b])
        for t in range(9):
            expect = x[b, min(t + s, n - 1)] if t < n else x[b, t]  # padding frames stay put
            assert torch.equal(y[b, t], expect), (b, t)
    assert torch.equal(shift_frames(x, lengths, torch.zeros(3, dtype=torch.long)), x)


@pytest.mark.parametrize("kind", ["tdnnf", "transformer"])
def test_frame_shift_only_in_training_and_equal_to_shifting_the_input(kind):
    section = ({"preset": "tdnnf-small"} if kind == "tdnnf" else
               {"type": "transformer", "preset": "transformer-small", "num_layers": 1, "dropout": 0.0})
    torch.manual_seed(5)
    plain = build_model(section, feat_dim=6, num_outputs=4, where="test", output_source="the test")
    torch.nn.init.normal_(plain.chain_head.output.weight)
    shifted = build_model({**section, "frame_shift": True}, feat_dim=6, num_outputs=4, where="test", output_source="the test")
    shifted.load_state_dict(plain.state_dict())
    assert shifted.model_info()["config"]["frame_shift"] is True
    x, lens = torch.randn(4, 40, 6), torch.tensor([40, 31, 17, 3])

    plain.eval(), shifted.eval()  # decoding and alignment never shift
    assert torch.equal(plain(x, lens)[0], shifted(x, lens)[0])

    plain.train(), shifted.train()
    plain_ref = copy.deepcopy(plain)  # batchnorm statistics move in training mode
    torch.manual_seed(11)
    out, _, out_lens = shifted(x, lens)
    torch.manual_seed(11)
    expect, _, expect_lens = plain_ref(shift_frames(x, lens, random_frame_shifts(4, 3, x.device)), lens)
    assert torch.equal(out_lens, expect_lens) and out_lens.tolist() == [14, 11, 6, 1]
    assert torch.allclose(out, expect, atol=1e-6)
    # some utterance was really shifted: the unshifted input gives another output
    torch.manual_seed(11)
    assert random_frame_shifts(4, 3, x.device).any()
    assert not torch.allclose(out, plain(x, lens)[0], atol=1e-4)
