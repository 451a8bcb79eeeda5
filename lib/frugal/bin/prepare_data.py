"""Prepare a corpus as lhotse manifests (recordings, supervisions, cuts) and its lexicon.

Writes ``<output-dir>/<corpus>_{recordings,supervisions,cuts}_<part>.jsonl.gz`` for each
part of the corpus, and into ``--lexicon-dir`` (when given) the corpus's lexicon
(``lexicon.txt``, Kaldi format ``WORD p1 p2 ...``) where it ships or implies one, and the
words of its training transcripts (``words.txt``) where a dictionary has to provide them.
Every output is written atomically: a failed run leaves the old outputs (or none).
The corpora are the modules of frugal.data.corpora.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from frugal.data.corpora import corpora
from frugal.errors import BadValue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    for name, corpus in corpora().items():
        p = sub.add_parser(name, help=corpus.summary, description=corpus.description)
        p.add_argument("--corpus-dir", type=Path, required=True, help="the corpus as distributed")
        p.add_argument("--output-dir", type=Path, default=Path("data/manifests"),
                       help="where the manifests go (default: %(default)s)")
        p.add_argument("--lexicon-dir", type=Path, default=None,
                       help="where lexicon.txt / words.txt go (e.g. data/local); none written without it")
        for o in corpus.options:
            flag = "--" + o.name.replace("_", "-")
            if o.switch:
                p.add_argument(flag, dest=o.name, action="store_true", help=o.help)
            else:
                p.add_argument(flag, dest=o.name, default=o.default, type=o.type, choices=o.choices, nargs=o.nargs,
                               help=o.help + (" (default: %(default)s)" if o.default is not None else ""))
        if corpus.download is not None:
            p.add_argument("--download", action="store_true", help="download the corpus into --corpus-dir and stop")


def run(args) -> None:
    corpus = corpora()[args.corpus]
    if getattr(args, "download", False):
        corpus.download(args.corpus_dir)
        return
    if not args.corpus_dir.is_dir():
        raise BadValue("corpus_dir", args.corpus_dir, "no such directory")
    corpus.prepare(args.corpus_dir, args.output_dir, args.lexicon_dir,
                   **{o.name: getattr(args, o.name) for o in corpus.options})
