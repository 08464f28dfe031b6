"""Proofs that musicjudge scores MusicGen the way MusicGen generates (delay pattern, BOS
frame, null or text condition), on a tiny random MusicGen with the real architecture."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from musicjudge.errors import ConfigError
from musicjudge.lm.scoring import codebook_delays, decoder_token_nll, delayed_input_ids

from .conftest import make_wave


class ForceCodes(LogitsProcessor):
    """Teacher forcing inside ``generate``: at each step only the true next code may be chosen
    (codebook k at delayed position s is frame s-1-delay_k), so greedy decoding walks the
    clip's own codes while ``output_logits`` keeps the model's raw predictions."""

    def __init__(self, codes: torch.Tensor, delays: list[int]):
        self.codes, self.delays = codes, delays

    def __call__(self, input_ids, scores):
        position = input_ids.shape[-1]
        forced = torch.full_like(scores, float("-inf"))
        for k, delay in enumerate(self.delays):
            t = position - 1 - delay
            token = int(self.codes[k, t]) if 0 <= t < self.codes.shape[1] else 0
            forced[k, token] = 0.0
        return forced


def incremental_nll(lm, codes: torch.Tensor, condition: str | None) -> torch.Tensor:
    """NLL of every code from MusicGen's own step-by-step ``generate`` (KV cache, its own delay
    pattern mask and BOS), i.e. minus the log-prob of each next token."""
    model = lm.model
    delays = codebook_delays(lm.decoder)
    num_frames = codes.shape[1]
    steps = num_frames + max(delays)
    if condition is None:
        inputs = dict(model.get_unconditional_inputs(num_samples=1))
    else:
        enc = lm.tokenizer([condition], return_tensors="pt")
        inputs = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], guidance_scale=1.0)
    out = model.generate(
        **inputs, max_length=steps + 1, do_sample=False, logits_processor=LogitsProcessorList([ForceCodes(codes, delays)]),
        output_logits=True, return_dict_in_generate=True,
    )
    assert len(out.logits) == steps
    nll = torch.full(codes.shape, float("nan"))
    for step, logits in enumerate(out.logits, start=1):
        logp = torch.log_softmax(logits.float(), dim=-1)  # [K, V]
        for k, delay in enumerate(delays):
            t = step - 1 - delay
            if 0 <= t < num_frames:
                nll[k, t] = -logp[k, codes[k, t]]
    return nll


@pytest.mark.parametrize("condition", [None, "calm piano piece with strings"])
def test_teacher_forced_equals_incremental_generation(tiny_lm, condition):
    codes = tiny_lm.encode(make_wave(0.6))  # 30 frames
    teacher = tiny_lm.token_nll(codes, condition=condition)
    reference = incremental_nll(tiny_lm, codes, condition)
    assert not torch.isnan(reference).any()
    assert teacher.mask.all()
    assert (teacher.nll - reference).abs().max().item() <= 1e-4


def test_chunked_scoring_equals_one_pass(tiny_lm):
    codes = tiny_lm.encode(make_wave(1.0, seed=3))
    one_pass = tiny_lm.token_nll(codes)
    old = tiny_lm.chunk_size
    try:
        tiny_lm.chunk_size = 7
        chunked = tiny_lm.token_nll(codes)
    finally:
        tiny_lm.chunk_size = old
    assert (one_pass.nll - chunked.nll).abs().max().item() <= 1e-5


def test_delay_pattern_layout_is_musicgens(tiny_lm):
    codes = torch.arange(12).reshape(1, 4, 3) % tiny_lm.codebook_size
    bos = tiny_lm.bos_token_id
    seq = delayed_input_ids(tiny_lm.decoder, codes, bos_token_id=bos)[0]
    assert seq.shape == (4, 3 + 3 + 1)
    for k in range(4):
        assert seq[k, k + 1 : k + 4].tolist() == codes[0, k].tolist()  # code (k, t) at position t + k + 1
        rest = torch.cat([seq[k, : k + 1], seq[k, k + 4 :]])
        assert (rest == bos).all()  # BOS frame and delay slots hold the decoder-start token


def test_causality_follows_the_delay_pattern(tiny_lm):
    """Changing code (k, t) can only change predictions made at delayed positions
    >= t + k + 1. So codebook j at frame t' is untouched iff t' + j <= t + k: lower codebooks
    of frame t keep their NLL, but HIGHER codebooks of EARLIER frames (t' >= t + k + 1 - j)
    do change -- with the delay pattern, frame t-1's codebook 3 is predicted after frame t's
    codebook 0 was fed."""
    codes = tiny_lm.encode(make_wave(0.8, seed=5))
    base = tiny_lm.token_nll(codes).nll
    num_codebooks, num_frames = codes.shape
    for k, t in [(0, 20), (1, 12), (3, 25)]:
        changed = codes.clone()
        changed[k, t] = (changed[k, t] + 17) % tiny_lm.codebook_size
        nll = tiny_lm.token_nll(changed).nll
        for j in range(num_codebooks):
            for frame in range(num_frames):
                diff = abs(float(nll[j, frame] - base[j, frame]))
                if (j, frame) == (k, t):
                    assert diff > 1e-6  # the changed target itself
                elif frame + j <= t + k:
                    assert diff <= 1e-5, (k, t, j, frame)
        # NLL at every earlier frame is untouched only in codebooks that are not delayed past it
        later_codebooks = range(k + 1, num_codebooks)
        earlier_changes = [abs(float(nll[j, t - 1] - base[j, t - 1])) for j in later_codebooks]
        if k < num_codebooks - 1:
            assert max(earlier_changes) > 1e-6  # frame t-1 of a higher codebook sees code (k, t)
        # everything strictly after the change moves (the model is not degenerate)
        assert (nll[:, t + 1 :] - base[:, t + 1 :]).abs().max() > 1e-6


def test_null_condition_equals_models_own_forward(tiny_lm):
    """Our null condition path == MusicgenForConditionalGeneration.forward with
    get_unconditional_inputs(); our text path == forward with the tokenised text."""
    model = tiny_lm.model
    codes = tiny_lm.encode(make_wave(0.5, seed=2))
    num_frames = codes.shape[1]
    seq = delayed_input_ids(tiny_lm.decoder, codes[None], bos_token_id=tiny_lm.bos_token_id)[0]
    decoder_inputs = seq[:, :-1]  # [K, T + 3]

    def nll_from_logits(logits):  # logits [K, P, V] -> [K, T]
        logp = torch.log_softmax(logits.float(), -1)
        return torch.stack([-logp[k, k : k + num_frames].gather(-1, codes[k][:, None])[:, 0] for k in range(4)])

    with torch.inference_mode():
        null = model.get_unconditional_inputs(num_samples=1)
        ref_null = model(encoder_outputs=null.encoder_outputs, attention_mask=null.attention_mask,
                         decoder_input_ids=decoder_inputs).logits
        text = "dark ambient synth"
        enc = tiny_lm.tokenizer([text], return_tensors="pt")
        ref_text = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                         decoder_input_ids=decoder_inputs).logits
    assert tiny_lm.null_condition_is_zero()  # so the null path below skips cross-attention
    ours_null = tiny_lm.token_nll(codes, condition=None).nll
    ours_text = tiny_lm.token_nll(codes, condition=text).nll
    assert (ours_null - nll_from_logits(ref_null)).abs().max().item() <= 1e-5
    assert (ours_text - nll_from_logits(ref_text)).abs().max().item() <= 1e-5
    assert (ours_text - ours_null).abs().max().item() > 1e-6  # the text condition is actually used


def test_batch_with_padding_equals_single_items(tiny_lm):
    codes = [tiny_lm.encode(make_wave(s, seed=i)) for i, s in enumerate([0.3, 0.7, 0.5])]
    batched = tiny_lm.token_nll_batch(codes, condition="jazz guitar")
    for c, b in zip(codes, batched):
        single = tiny_lm.token_nll(c, condition="jazz guitar")
        assert b.nll.shape == c.shape and b.mask.all()
        assert (b.nll - single.nll).abs().max().item() <= 1e-5
        curve = b.frame_curve()
        assert curve.shape == (c.shape[1],)
        assert abs(float(curve.mean()) - b.mean()) <= 1e-5


def test_decoder_token_nll_trains(tiny_lm):
    """The same function is the training loss: gradients flow, and padding is ignored."""
    import copy

    decoder = copy.deepcopy(tiny_lm.decoder).train()
    codes = torch.stack([tiny_lm.encode(make_wave(0.4, seed=s)) for s in (7, 8)])
    codes[1, :, 15:] = 0  # padding region of a shorter second item
    optimiser = torch.optim.SGD(decoder.parameters(), lr=0.5)
    losses = []
    for _ in range(3):
        out = decoder_token_nll(decoder, codes, pad_token_id=tiny_lm.pad_token_id,
                                bos_token_id=tiny_lm.bos_token_id, lengths=[20, 15])
        assert out.mask[1, :, 15:].sum() == 0 and out.mask[0].all()
        assert out.nll[1, :, 15:].abs().sum() == 0
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < losses[0]
    assert decoder.lm_heads[3].weight.grad.abs().sum() > 0


def test_bad_codes_raise_one_line_errors(tiny_lm):
    with pytest.raises(ConfigError, match=r"expected shape \[4, T\]"):
        tiny_lm.token_nll(torch.zeros(3, 10, dtype=torch.long))
    with pytest.raises(ConfigError, match="values must lie in"):
        tiny_lm.token_nll(torch.full((4, 10), tiny_lm.codebook_size))


def test_stereo_delay_pattern_equals_incremental_generation(tiny_stereo_lm):
    """musicgen-stereo interleaves left/right codebooks that share a delay (k // 2)."""
    assert codebook_delays(tiny_stereo_lm.decoder) == [0, 0, 1, 1, 2, 2, 3, 3]
    codes = tiny_stereo_lm.encode(make_wave(0.5, seed=9))  # mono input -> both channels
    assert codes.shape == (8, 25) and (codes[0::2] == codes[1::2]).all()
    teacher = tiny_stereo_lm.token_nll(codes)
    assert (teacher.nll - incremental_nll(tiny_stereo_lm, codes, None)).abs().max().item() <= 1e-4


def test_bfloat16_path_keeps_codes_and_stays_close(tiny_musicgen_dir, tiny_lm):
    """bf16 scoring (the GPU setting, run here on CPU): EnCodec stays float32 so the codes are
    identical; NLLs (log-softmax in float32) stay close to float32 scoring."""
    from musicjudge.lm.musicgen import MusicGenLM

    half = MusicGenLM.from_pretrained(str(tiny_musicgen_dir), device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.codec.dtype == torch.float32
    wave = make_wave(0.8, seed=4)
    codes = half.encode(wave)
    assert torch.equal(codes, tiny_lm.encode(wave))
    for condition in (None, "soft strings"):
        low, full = half.token_nll(codes, condition), tiny_lm.token_nll(codes, condition)
        assert low.nll.dtype == torch.float32
        assert (low.nll - full.nll).abs().max().item() < 0.05
