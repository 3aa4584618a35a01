"""Understanding: the model's held-out scores (Rasa's own `rasa test nlu` report, reused) side by side with the simple
things an office could buy instead, scored on the same held-out sentences (tests/nlu/):

- TF-IDF over character 1–3-grams of the training examples (data/nlu/), nearest neighbour (FAQ retrieval: the
  intent of the most similar training question) and a linear SVM;
- the BM25 FAQ index the staff console and the action use (bot/faq.py): the intent of the top knowledge entry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import classification_report
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

from bot import knowledge
from bot.faq import FaqIndex, nlu_examples
from tools.stack import ROOT, VENV_BIN

NLU_COPIES = ("intent_report.json", "intent_errors.json", "intent_confusion_matrix.png", "intent_histogram.png")
NO_ANSWER = "(no answer)"


def label(intent: str) -> str:
    """Rasa reports a retrieval intent (chitchat/ask_name) under its base intent."""
    return intent.split("/", 1)[0]


def pairs(directory: Path) -> Tuple[List[str], List[str]]:
    examples = nlu_examples(sorted(directory.glob("*.yml")))
    texts, labels = [], []
    for intent, lines in sorted(examples.items()):
        texts += lines
        labels += [label(intent)] * len(lines)
    return texts, labels


def nlu_command(model: Path, out: Path) -> List[str]:
    return [str(VENV_BIN / "rasa"), "test", "nlu", "--nlu", "tests/nlu", "--model", str(model), "--out", str(out)]


def rasa_report(model: Path, out_dir: Path, fresh: bool, log=print) -> Dict[str, Any]:
    """Rasa's intent report over tests/nlu: results/nlu's when it is newer than the model and the held-out files,
    otherwise `rasa test nlu` now (into out_dir/nlu). Its files are copied into out_dir."""
    existing = ROOT / "results" / "nlu"
    inputs = [model, *sorted((ROOT / "tests" / "nlu").glob("*.yml"))]
    report_file = existing / "intent_report.json"
    reusable = report_file.is_file() and report_file.stat().st_mtime > max(p.stat().st_mtime for p in inputs)
    if reusable and not fresh:
        source, seconds = existing, None
        log(f"  reusing {report_file.relative_to(ROOT)} (newer than the model and tests/nlu)")
    else:
        source = out_dir / "nlu"
        log(f"  rasa test nlu → {source} …")
        started = time.monotonic()
        subprocess.run(
            [*nlu_command(model, source), "--quiet"],
            cwd=ROOT,
            check=True,
            env={**os.environ, **QUIET},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = round(time.monotonic() - started, 1)
    for name in NLU_COPIES:
        if (source / name).is_file():
            shutil.copy2(source / name, out_dir / name)
    report = json.loads((source / "intent_report.json").read_text(encoding="utf-8"))
    table = subprocess.run(
        [sys.executable, "tools/check_nlu_report.py", str(source / "intent_report.json"), "--min-macro-f1", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    per_intent = {
        k: {
            "f1": v["f1-score"],
            "precision": v["precision"],
            "recall": v["recall"],
            "support": v["support"],
            "confused_with": v.get("confused_with") or {},
        }
        for k, v in report.items()
        if isinstance(v, dict) and "support" in v and "avg" not in k
    }
    return {
        "source": str(source.relative_to(ROOT)) if source.is_relative_to(ROOT) else str(source),
        "reused": source == existing,
        "seconds": seconds,
        "command": " ".join(nlu_command(Path("models/anju.tar.gz"), Path("results/nlu"))).replace(
            str(VENV_BIN), ".venv/bin"
        ),
        "macro_f1": report["macro avg"]["f1-score"],
        "accuracy": report.get("accuracy"),
        "per_intent": per_intent,
        "table": table,
    }


QUIET = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}


def _score(name: str, truth: List[str], predicted: List[str], seconds: float) -> Dict[str, Any]:
    # over the held-out intents, as Rasa's report: an answer no sentence wanted counts against precision only
    report = classification_report(truth, predicted, labels=sorted(set(truth)), output_dict=True, zero_division=0)
    return {
        "name": name,
        "macro_f1": report["macro avg"]["f1-score"],
        "accuracy": sum(t == p for t, p in zip(truth, predicted, strict=True)) / max(1, len(truth)),
        "ms_per_sentence": round(1000 * seconds / max(1, len(truth)), 3),
        "per_intent": {k: v["f1-score"] for k, v in report.items() if isinstance(v, dict) and "avg" not in k},
    }


def baselines() -> Dict[str, Any]:
    train_x, train_y = pairs(ROOT / "data" / "nlu")
    test_x, test_y = pairs(ROOT / "tests" / "nlu")
    out = {"training_examples": len(train_x), "heldout_sentences": len(test_x), "models": []}
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    train_m = vectorizer.fit_transform(train_x)
    for name, classifier in (
        ("TF-IDF char 1-3, nearest neighbour", KNeighborsClassifier(n_neighbors=1, metric="cosine")),
        ("TF-IDF char 1-3, linear SVM", LinearSVC(C=1.0, random_state=0)),
    ):
        classifier.fit(train_m, train_y)
        started = time.perf_counter()
        predicted = list(classifier.predict(vectorizer.transform(test_x)))
        out["models"].append(_score(name, test_y, predicted, time.perf_counter() - started))
    kb = knowledge.load()
    index = FaqIndex(kb, ROOT / "data" / "nlu")
    intent_of = {entry.id: entry.intent for entry in kb.entries.values()}
    started = time.perf_counter()
    predicted = []
    for text in test_x:
        hits = index.search(text, limit=1)
        predicted.append(label(intent_of[hits[0].entry_id]) if hits else NO_ANSWER)
    out["models"].append(_score("BM25 FAQ index (bot/faq.py)", test_y, predicted, time.perf_counter() - started))
    return out
