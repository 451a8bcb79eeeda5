"""Character and BPE units for CTC (prepare-units), checked against sentencepiece itself."""
import random

import sentencepiece as spm

from frugal.bin.main import main as frugal_main
from frugal.lang.units import WORD_BOUNDARY


def generated_text(path, num_utts=300, seed=0):
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7))) for _ in range(60)]
    lines = [f"utt{k:04d} " + " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 12)))
             for k in range(num_utts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sorted({w for line in lines for w in line.split()[1:]})


def table(path):
    return [(s, int(i)) for s, i in (line.split() for line in path.read_text(encoding="utf-8").splitlines())]


def test_char_units(tmp_path):
    words = generated_text(tmp_path / "text")
    out = tmp_path / "units"
    assert frugal_main(["prepare-units", "--text", str(tmp_path / "text"), "--unit", "char",
                        "--output-dir", str(out)]) == 0
    tokens = table(out / "tokens.txt")
    assert tokens[:3] == [("<blk>", 0), ("<unk>", 1), (WORD_BOUNDARY, 2)]
    assert [t for t, _ in tokens[3:]] == sorted(set("".join(words)))
    assert [i for _, i in tokens] == list(range(len(tokens)))
    lex = {line.split()[0]: line.split()[1:] for line in (out / "lexicon.txt").read_text().splitlines()}
    for w in words:
        assert lex[w] == [WORD_BOUNDARY] + list(w)
    # The lang dir's phone table is the token table plus disambiguation symbols.
    phones = table(out / "phones.txt")
    assert phones[:len(tokens)] == tokens and phones[len(tokens)][0] == "#0"


def test_bpe_units_match_sentencepiece(tmp_path):
    words = generated_text(tmp_path / "text")
    out = tmp_path / "units"
    assert frugal_main(["prepare-units", "--text", str(tmp_path / "text"), "--unit", "bpe",
                        "--vocab-size", "60", "--output-dir", str(out)]) == 0
    sp = spm.SentencePieceProcessor(model_file=str(out / "bpe.model"))
    tokens = table(out / "tokens.txt")
    assert len(tokens) == 60 == sp.get_piece_size()
    assert tokens[:3] == [("<blk>", 0), ("<sos/eos>", 1), ("<unk>", 2)]
    assert tokens == [(sp.id_to_piece(i), i) for i in range(60)]
    lex = {line.split()[0]: line.split()[1:] for line in (out / "lexicon.txt").read_text().splitlines()}
    for w in words:
        assert "".join(lex[w]) == WORD_BOUNDARY + w
        assert lex[w] == sp.encode(w, out_type=str)


def test_bpe_vocab_too_large_is_an_option_error(tmp_path, capsys):
    (tmp_path / "text").write_text("u1 ab ba\n", encoding="utf-8")
    rc = frugal_main(["prepare-units", "--text", str(tmp_path / "text"), "--unit", "bpe",
                      "--vocab-size", "5000", "--output-dir", str(tmp_path / "units")])
    assert rc == 1
    assert "--vocab-size 5000" in capsys.readouterr().err
    assert not (tmp_path / "units").exists()
