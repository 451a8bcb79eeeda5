"""Lexicon validation, symbol tables, disambiguation symbols, CMUdict and prepare-lang."""
from pathlib import Path

import pytest

from frugal.bin.main import main as frugal_main
from frugal.errors import FrugalError
from frugal.lang.cmudict_lexicon import cmudict_lexicon
from frugal.lang.lexicon import map_oov_words, read_lexicon


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_pairs(path: Path):
    return [tuple(line.split()) for line in path.read_text(encoding="utf-8").splitlines()]


def test_word_without_pronunciation_names_file_line_word(tmp_path):
    lex = write(tmp_path / "lexicon.txt", "a A B\nb C\nfoo\nc D\n")
    with pytest.raises(FrugalError, match=r"lexicon\.txt:3: word 'foo' has no pronunciation"):
        read_lexicon(lex)
    lexicon = read_lexicon(lex, drop_empty=True)
    assert lexicon.words() == ["a", "b", "c"]


@pytest.mark.parametrize("text, message", [
    ("a A #1\n", r"lexicon\.txt:1: phone '#1' starts with '#'"),
    ("a A\n<s> B\n", r"lexicon\.txt:2: word '<s>' is reserved"),
    ("#0 A\n", r"lexicon\.txt:1: word '#0' is reserved"),
    ("a A <eps>\n", r"lexicon\.txt:1: phone '<eps>' is reserved"),
])
def test_bad_symbols_are_errors(tmp_path, text, message):
    with pytest.raises(FrugalError, match=message):
        read_lexicon(write(tmp_path / "lexicon.txt", text))


def test_lexiconp_probabilities_and_duplicates(tmp_path):
    lex = write(tmp_path / "lexiconp.txt", "a 1.0 A B\na 0.25 A C\na 1.0 A B\nb 1 C\n")
    lexicon = read_lexicon(lex)
    assert [(p.word, p.prob, p.phones) for p in lexicon.prons] == [
        ("a", 1.0, ("A", "B")), ("a", 0.25, ("A", "C")), ("b", 1.0, ("C",))]
    with pytest.raises(FrugalError, match=r"lexiconp\.txt:1: word 'a': probability 1.5 is not in"):
        read_lexicon(write(tmp_path / "lexiconp.txt", "a 1.5 A\n"))
    with pytest.raises(FrugalError, match=r"lexiconp\.txt:1: word 'a': probability 'A' is not a number"):
        read_lexicon(write(tmp_path / "lexiconp.txt", "a A B\n"))


TOY = """a A B
b A B
c A
d C D
e A B C
f E
"""


def prepare(tmp_path, *extra, lexicon=TOY):
    lex = write(tmp_path / "lexicon.txt", lexicon)
    out = tmp_path / "lang"
    rc = frugal_main(["prepare-lang", "--lexicon", str(lex), "--output-dir", str(out), *extra])
    return rc, out


def test_symbol_tables_and_phone_classes(tmp_path):
    rc, lang = prepare(tmp_path)
    assert rc == 0
    words = read_pairs(lang / "words.txt")
    # Kaldi layout: <eps> 0, the words sorted, then #0 <s> </s>, ids consecutive.
    assert [w for w, _ in words] == ["<eps>", "<UNK>", "a", "b", "c", "d", "e", "f", "#0", "<s>", "</s>"]
    assert [int(i) for _, i in words] == list(range(len(words)))
    phones = read_pairs(lang / "phones.txt")
    # Disambiguation: "A B" is shared by a and b and is a prefix of e; "A" is a prefix:
    # #1 #2 are needed, one more for optional silence: #0..#3.
    assert [p for p, _ in phones] == ["<eps>", "SIL", "SPN", "A", "B", "C", "D", "E",
                                      "#0", "#1", "#2", "#3"]
    assert [int(i) for _, i in phones] == list(range(len(phones)))
    ids = dict(phones)
    for name, expected in [("silence", ["SIL", "SPN"]), ("nonsilence", ["A", "B", "C", "D", "E"]),
                           ("optional_silence", ["SIL"]), ("disambig", ["#0", "#1", "#2", "#3"])]:
        assert (lang / "phones" / f"{name}.txt").read_text().split() == expected
        assert (lang / "phones" / f"{name}.int").read_text().split() == [ids[p] for p in expected]
    assert (lang / "oov.txt").read_text() == "<UNK>\n"
    assert (lang / "oov.int").read_text() == "1\n"
    assert "<UNK> SPN\n" in (lang / "lexicon.txt").read_text()
    assert (lang / "L.fst").stat().st_size > 0 and (lang / "L_disambig.fst").stat().st_size > 0
    assert not list(tmp_path.glob(".tmp.*"))


def test_disambiguation_of_homophones_and_prefixes(tmp_path):
    rc, lang = prepare(tmp_path)
    assert rc == 0
    assert (lang / "lexicon_disambig.txt").read_text().splitlines() == [
        "a A B #1",
        "b A B #2",
        "c A #1",
        "d C D",
        "e A B C",
        "f E",
        "<UNK> SPN",
    ]
    assert (lang / "lexiconp_disambig.txt").read_text().splitlines()[0] == "a 1 A B #1"


def test_unknown_transcript_words_with_and_without_oov(tmp_path, capsys):
    text = write(tmp_path / "text", "u1 a b\nu2 zork c zork\n")
    rc, lang = prepare(tmp_path, "--words-from", str(text))
    assert rc == 1
    err = capsys.readouterr().err
    assert "frugal prepare-lang: error:" in err and "zork" in err and "--unk-ok" in err
    assert sorted(p.name for p in lang.iterdir()) == ["missing_words.txt"]  # no lang dir
    assert (lang / "missing_words.txt").read_text() == "zork\n"
    rc, lang = prepare(tmp_path, "--words-from", str(text), "--unk-ok", "--oov", "<unk>")
    assert rc == 0
    assert (lang / "oov.txt").read_text() == "<unk>\n"
    assert "<unk> SPN" in (lang / "lexicon.txt").read_text().splitlines()


def test_unk_ok_drops_words_without_pronunciation(tmp_path, capsys):
    rc, _ = prepare(tmp_path, lexicon=TOY + "g\n")
    assert rc == 1
    assert "lexicon.txt:7: word 'g' has no pronunciation" in capsys.readouterr().err
    rc, lang = prepare(tmp_path, "--unk-ok", lexicon=TOY + "g\n")
    assert rc == 0
    assert "g" not in [w for w, _ in read_pairs(lang / "words.txt")]


def test_cmudict_pronunciations():
    lexicon, missing = cmudict_lexicon(["hello", "CAT", "the", "qzxvbnq"], remove_stress=True)
    assert missing == ["qzxvbnq"]
    assert ("HH", "AH", "L", "OW") in [p.phones for p in lexicon.prons_of("hello")]
    assert [p.phones for p in lexicon.prons_of("CAT")] == [("K", "AE", "T")]
    # "the" has stressed variants (AH0, AH1) that coincide without stress: kept once.
    the = [p.phones for p in lexicon.prons_of("the")]
    assert ("DH", "AH") in the and len(the) == len(set(the))
    stressed, _ = cmudict_lexicon(["cat"], remove_stress=False)
    assert [p.phones for p in stressed.prons_of("cat")] == [("K", "AE1", "T")]


def test_prepare_lang_from_cmudict(tmp_path, capsys):
    text = write(tmp_path / "text", "u1 HELLO WORLD\nu2 THE CAT qzxvbnq\n")
    out = tmp_path / "lang"
    args = ["prepare-lang", "--cmudict", "--words-from", str(text), "--output-dir", str(out)]
    assert frugal_main(args) == 1
    assert "qzxvbnq" in capsys.readouterr().err
    assert (out / "missing_words.txt").read_text() == "qzxvbnq\n"
    assert frugal_main(args + ["--unk-ok"]) == 0
    assert (out / "missing_words.txt").read_text() == "qzxvbnq\n"  # in the lang dir, which maps it to <UNK>
    lex = (out / "lexicon.txt").read_text().splitlines()
    assert "CAT K AE T" in lex and "<UNK> SPN" in lex
    assert "AH" in (out / "phones" / "nonsilence.txt").read_text().split()
    # The missing words, pronounced by hand, complete CMUdict's lexicon (CMUdict's phones only).
    extra = write(tmp_path / "extra.txt", "qzxvbnq K W IH Z\n")
    assert frugal_main(args + ["--extra-lexicon", str(extra)]) == 0
    lex = (out / "lexicon.txt").read_text().splitlines()
    assert "qzxvbnq K W IH Z" in lex and "CAT K AE T" in lex
    assert "qzxvbnq" in (out / "words.txt").read_text().split()
    assert frugal_main(["prepare-lang", "--lexicon", str(extra), "--extra-lexicon", str(extra),
                        "--output-dir", str(tmp_path / "x")]) == 1
    assert "--extra-lexicon" in capsys.readouterr().err


def test_transcript_words_map_to_oov():
    vocabulary = {"a", "b"}
    assert map_oov_words(["a", "x", "b"], vocabulary, "<UNK>") == ["a", "<UNK>", "b"]
    with pytest.raises(FrugalError, match=r"text:3: word 'x' is not in the lexicon"):
        map_oov_words(["a", "x"], vocabulary, None, place="text:3")
