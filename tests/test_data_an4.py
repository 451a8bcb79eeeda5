"""frugal prepare-data an4: the corpus's own layout to manifests, dev of whole held-out speakers."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main
from frugal.data.corpora.an4 import choose_dev_speakers, prepare_an4, read_dictionary

RATE = 16000
DIC = "A AH\nA(2) EY\nGO G OW\nNO N OW\nYES Y EH S\n"
FILLER = "<s> SIL\n</s> SIL\n<sil> SIL\n"


def make_an4(root: Path, train, test=()) -> Path:
    """An AN4 directory: train / test are (speaker, utterance, words) triples."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "an4.dic").write_text(DIC)
    (root / "etc" / "an4.filler").write_text(FILLER)
    for side, utts, wav_dir in (("train", train, "an4_clstk"), ("test", test, "an4test_clstk")):
        if not utts:
            continue
        ids, trans = [], []
        for n, (spk, utt, words) in enumerate(utts):
            d = root / "wav" / wav_dir / spk
            d.mkdir(parents=True, exist_ok=True)
            noise = np.random.default_rng(n).standard_normal(RATE // 2 + 800 * n) * 300
            sf.write(str(d / f"{utt}.wav"), noise.astype(np.int16), RATE, subtype="PCM_16")
            ids.append(f"{wav_dir}/{spk}/{utt}\n")
            trans.append(f"<s> {words} </s> ({utt})\n")
        (root / "etc" / f"an4_{side}.fileids").write_text("".join(ids))
        (root / "etc" / f"an4_{side}.transcription").write_text("".join(trans))
    return root


TRAIN = [("fabc", "an1-fabc-b", "YES"), ("fabc", "an2-fabc-b", "A GO"), ("mxyz", "an3-mxyz-b", "NO"),
         ("mxyz", "an4-mxyz-b", "YES NO"), ("fdef", "an5-fdef-b", "GO"), ("mqrs", "an6-mqrs-b", "A")]


def test_parts_ids_and_lexicon(tmp_path):
    corpus = make_an4(tmp_path / "an4", TRAIN, test=[("fzzz", "an9-fzzz-b", "NO GO")])
    out = tmp_path / "m"
    summaries = prepare_an4(corpus, out, tmp_path / "local", dev_utterances=2, dev_seed=3)
    assert set(summaries) == {"train", "dev", "test"}
    dev = load_manifest(out / "an4_cuts_dev.jsonl.gz")
    train = load_manifest(out / "an4_cuts_train.jsonl.gz")
    test = load_manifest(out / "an4_cuts_test.jsonl.gz")
    dev_speakers = {c.supervisions[0].speaker for c in dev}
    train_speakers = {c.supervisions[0].speaker for c in train}
    assert not dev_speakers & train_speakers and len(dev) + len(train) == len(TRAIN)
    assert {s[0] for s in dev_speakers} == {"f", "m"}  # one woman, one man: 2 utterances reached
    # The corpus's utterance ids, texts without <s> </s>, speaker from the folder.
    by_id = {c.id: c for c in list(train) + list(dev)}
    assert set(by_id) == {u for _, u, _ in TRAIN}
    assert by_id["an4-mxyz-b"].supervisions[0].text == "YES NO"
    assert by_id["an4-mxyz-b"].supervisions[0].speaker == "mxyz"
    assert by_id["an4-mxyz-b"].duration == pytest.approx((RATE // 2 + 800 * 3) / RATE)
    [t] = test
    assert t.id == "an9-fzzz-b" and t.supervisions[0].text == "NO GO"
    lexicon = (tmp_path / "local" / "lexicon.txt").read_text().splitlines()
    assert "A AH" in lexicon and "A EY" in lexicon and "<SIL> SIL" in lexicon  # A(2) is A


def test_no_test_side_and_fixed_dev(tmp_path, caplog):
    corpus = make_an4(tmp_path / "an4", TRAIN)
    summaries = prepare_an4(corpus, tmp_path / "m", dev_speakers=["mqrs"])
    assert set(summaries) == {"train", "dev"} and summaries["dev"].num_cuts == 1
    assert "no test side" in caplog.text


def test_dev_speakers_alternate_and_fill():
    counts = {"fa": 10, "fb": 12, "fc": 9, "ma": 11, "mb": 13, "xx": 5}
    chosen = choose_dev_speakers(counts, 30, seed=1)
    assert sum(counts[s] for s in chosen) >= 30
    assert sum(counts[s] for s in chosen) - min(counts[s] for s in chosen) < 30  # no speaker more than needed
    assert {s[0] for s in chosen} == {"f", "m"}
    assert choose_dev_speakers(counts, 30, seed=1) == chosen  # seeded
    with pytest.raises(Exception, match="leaves no training speaker"):
        choose_dev_speakers(counts, 1000, seed=1)


@pytest.mark.parametrize("break_it, message", [
    (lambda root: (root / "etc" / "an4_train.transcription").write_text("<s> YES </s> (an1-fabc-b)\nYES NO\n"),
     "an4_train.transcription:2: expected '<s> WORDS </s> (utterance-id)'"),
    (lambda root: (root / "etc" / "an4_train.transcription").write_text("<s> MAYBE </s> (an1-fabc-b)\n"),
     "an4_train.transcription:1: MAYBE not in the dictionary"),
    (lambda root: (root / "etc" / "an4_train.transcription").write_text("<s> YES </s> (an7-fabc-b)\n"),
     "an4_train.transcription:1: utterance an7-fabc-b is not in"),
    (lambda root: (root / "wav" / "an4_clstk" / "fabc" / "an1-fabc-b.wav").unlink(),
     "an4_train.transcription:1: utterance an1-fabc-b has no audio"),
    (lambda root: (root / "etc" / "an4.dic").write_text("YES\n"), "an4.dic:1: word 'YES' has no pronunciation"),
])
def test_bad_corpus_is_named(tmp_path, capsys, break_it, message):
    corpus = make_an4(tmp_path / "an4", TRAIN)
    break_it(corpus)
    rc = frugal_main(["prepare-data", "an4", "--corpus-dir", str(corpus), "--output-dir", str(tmp_path / "m"),
                      "--dev-utterances", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1


def test_real_corpus(shared_dir, tmp_path):
    """The training side in ../shared: 948 utterances of 74 speakers; dev is whole speakers."""
    corpus = shared_dir / "data" / "an4"
    summaries = prepare_an4(corpus, tmp_path / "m", tmp_path / "local")
    assert summaries["train"].num_cuts + summaries["dev"].num_cuts == 948
    assert 100 <= summaries["dev"].num_cuts < 130
    sups = {p: load_manifest(tmp_path / "m" / f"an4_supervisions_{p}.jsonl.gz") for p in ("train", "dev")}
    speakers = {p: {s.speaker for s in sups[p]} for p in sups}
    assert len(speakers["train"]) + len(speakers["dev"]) == 74 and not speakers["train"] & speakers["dev"]
    # Every transcript word is pronounced by the corpus's dictionary.
    entries = read_dictionary(corpus / "etc" / "an4.dic", corpus / "etc" / "an4.filler")
    words = {w for w, _ in entries}
    assert all(w in words for p in sups for s in sups[p] for w in s.text.split())
    assert sum(1 for w, _ in entries if w == "A") == 2  # A and A(2)
