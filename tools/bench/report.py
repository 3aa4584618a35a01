"""results/bench/report.md from results/bench/data.json: the headline table first (metric, value, target, met?), then
each section with its figures, every figure followed by the command that reproduces it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

from tools.bench import plots
from tools.bench.load import TARGET_LABELS, TARGETS

GROWTH_TARGET = 1.3
FULL_PATH_TARGET = 0.6
RATIO_CLIENTS = 20
NLU_BAR = 0.94  # make test-nlu fails under it
BENCH = ".venv/bin/python -m tools.bench"


def _cell(speed: Dict[str, Any] | None, target: str, clients: int) -> Dict[str, Any] | None:
    for cell in (speed or {}).get("cells", []):
        if cell["target"] == target and cell["clients"] == clients:
            return cell
    return None


def _ratio(speed, a: str, b: str, clients: int) -> float | None:
    x, y = _cell(speed, a, clients), _cell(speed, b, clients)
    if not x or not y or not y["messages_per_s"]:
        return None
    return x["messages_per_s"] / y["messages_per_s"]


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**NO**")


def headline_rows(data: Dict[str, Any]) -> List[Tuple[str, str, str, str]]:
    """(metric, value, target, met?); a value from an earlier run than this one says which."""
    s = data.get("sections", {})
    run = data.get("run", {}).get("id")
    rows: List[Tuple[str, str, str, str]] = []

    def add(section: str, metric: str, value: str, target: str = "", met: str = "") -> None:
        from_run = (s.get(section) or {}).get("run")
        if from_run and from_run != run:
            value += f" (run of {from_run})"
        rows.append((metric, value, target, met))

    length, speed = s.get("length"), s.get("speed")
    growth = length.get("growth") if length else None
    window = length["window"] if length else 50
    add(
        "length",
        f"growth: median of the last {window} / first {window} messages of one "
        f"{length['messages'] if length else 300}-message conversation (gateway)",
        f"{growth:.2f}×" if growth else "not measured",
        f"≤ {GROWTH_TARGET}×",
        _met(growth <= GROWTH_TARGET if growth else None),
    )
    if length and length.get("paired_growth"):
        add("length", "the same against a control (each message also sent as a new conversation)",
            f"{length['paired_growth']:.2f}×")  # fmt: skip
    full = _ratio(speed, "gateway", "parse", RATIO_CLIENTS)
    add(
        "speed",
        f"full path / bare parse: answered messages/s at {RATIO_CLIENTS} clients",
        f"{full:.2f}×" if full is not None else "not measured",
        f"≥ {FULL_PATH_TARGET}×",
        _met(full >= FULL_PATH_TARGET if full is not None else None),
    )
    spread = _ratio(speed, "gateway", "parse_all", RATIO_CLIENTS)
    if spread is not None:
        where = f"full path / bare parse spread over every Rasa server at {RATIO_CLIENTS} clients"
        add("speed", where, f"{spread:.2f}×")
    rest = _ratio(speed, "rest", "parse", RATIO_CLIENTS)
    if rest is not None:
        add("speed", f"Rasa REST channel / bare parse at {RATIO_CLIENTS} clients", f"{rest:.2f}×")
    for target in ("gateway", "parse"):
        c = _cell(speed, target, RATIO_CLIENTS)
        if c:
            value = f"{c['messages_per_s']:.1f}/s, {c['p50_ms']:.0f} / {c['p95_ms']:.0f} / {c['p99_ms']:.0f} ms"
            add("speed", f"{target} at {RATIO_CLIENTS} clients: messages/s, p50 / p95 / p99", value)
    u = s.get("understanding")
    if u:
        macro = u["rasa"]["macro_f1"]
        add("understanding", "held-out macro-F1, the model", f"{macro:.3f}", f"≥ {NLU_BAR} (make test-nlu)",
            _met(macro >= NLU_BAR))  # fmt: skip
        best = max(u["baselines"]["models"], key=lambda m: m["macro_f1"])
        add("understanding", f"held-out macro-F1, best baseline ({best['name']})", f"{best['macro_f1']:.3f}")
    d = s.get("dialogues")
    if d:
        sample = "" if d["dialogues"] == d["of"] else f" (1 in {round(d['of'] / d['dialogues'])} of {d['of']})"
        add("dialogues", f"dialogue suite pass rate{sample}", f"{100 * d['pass_rate']:.1f}% of {d['dialogues']}")
    if s.get("startup"):
        add("startup", "cold start: processes started → first answer through the gateway",
            f"{s['startup']['seconds']:.0f} s")  # fmt: skip
    t = s.get("train")
    add("train", "`rasa train` from an empty cache", f"{t['seconds']:.0f} s" if t else "not measured (TRAIN=1)")
    if s.get("model"):
        add("model", "model size", f"{s['model']['size_mb']:.0f} MB")
    m = s.get("memory")
    if m and m["snapshots"].get(f"after {m['after']} messages"):
        snap = m["snapshots"][f"after {m['after']} messages"]
        parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(snap.items()))
        add("memory", f"RSS after {m['after']} messages (MB)", f"{sum(snap.values()):.0f} ({parts})")
    i = s.get("import")
    if i:
        add("import", f"ledger import, {i['members']} members (SQLite)",
            f"{i['seconds']:.1f} s, peak RSS {i['peak_rss_mb']:.0f} MB")  # fmt: skip
    return rows


def _when(section: Dict[str, Any], data: Dict[str, Any]) -> str:
    run = data.get("run", {}).get("id")
    return "this run" if section.get("run") == run else f"measured {section.get('run')}"


def headline_text(data: Dict[str, Any]) -> str:
    rows = [("metric", "value", "target", "met?"), *headline_rows(data)]
    rows = [tuple(c.replace("**", "").replace("`", "") for c in r) for r in rows]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    run = data.get("run", {})
    return f"make bench — {run.get('id', '?')} ({run.get('command', '')})\n" + "\n".join(lines)


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _figure(lines: List[str], name: str, alt: str, command: str) -> None:
    lines += ["", f"![{alt}]({name})", "", f"Reproduce: `{command}`", ""]


def _stale(section: Dict[str, Any], data: Dict[str, Any]) -> str:
    return "" if section.get("run") == data.get("run", {}).get("id") else f" *(from the run of {section.get('run')})*"


def write(data: Dict[str, Any], out: Path) -> Tuple[str, str]:
    s = data.get("sections", {})
    run = data.get("run", {})
    quick = " --quick" if run.get("quick") else ""
    lines = ["# 安居助手 benchmarks", ""]
    lines.append(
        f"Run {run.get('id')} — `{run.get('command')}` — commit {run.get('commit')}, {run.get('cpus')} CPUs, "
        f"{run.get('seconds', 0) / 60:.1f} min; load average {run.get('load_average_at_start')} at the start, "
        f"{run.get('load_average_at_end')} at the end (other work on the machine moves absolute times; the targets "
        "are ratios measured side by side in the same run). Asserts nothing."
    )
    lines += ["", "## Headline", ""]
    rows = headline_rows(data)
    lines += _table(["metric", "value", "target", "met?"], [list(r) for r in rows])
    lines += ["", f"Reproduce: `make bench{' QUICK=1' if run.get('quick') else ''}`", ""]

    stack = s.get("stack")
    if stack:
        lines += ["## The stack measured", ""]
        lines.append(
            (
                "Attached to a running stack"
                if stack["attached"]
                else "Started by tools/stack.py's LocalStack on free "
                "loopback ports with its own SQLite databases and the demo ledger"
            )
            + f": processes {', '.join(stack['processes'])}; {stack['rasa_servers']} Rasa server(s) behind the "
            "gateway. "
            "The per-address limit is off (`ANJU_RATE_LIMIT_PER_IP=0`) and the per-conversation burst is "
            "`ANJU_RATE_LIMIT_BURST=1000000`: all load comes from one address, and throttling is not what is measured."
        )
        lines += [
            "",
            "Settings (ANJU_*, secrets left out): " + ", ".join(f"`{k}={v}`" for k, v in stack["env"].items()),
        ]
        if stack.get("commands"):
            lines += ["", "Commands:", ""] + [f"- {k}: `{v}`" for k, v in stack["commands"].items()]
        lines.append("")

    u = s.get("understanding")
    if u:
        _understanding(lines, u, data, out)
    d = s.get("dialogues")
    if d:
        lines += [f"### Dialogue suite{_stale(d, data)}", ""]
        sample = "all" if d["dialogues"] == d["of"] else f"1 in {round(d['of'] / d['dialogues'])} (quick mode) of the"
        lines.append(
            f"{sample} {d['of']} residents' conversations of `tests/dialogues/` ({d['turns']} turns, "
            f"{d['seconds']:.0f} s) "
            "through this stack's gateway, judged by the functions of `tests/e2e/test_dialogues.py`; pass rate "
            f"**{100 * d['pass_rate']:.1f}%**. JUnit XML in `dialogues.xml`, summarised by `tools/dialogue_report.py`. "
            "The whole suite under pytest, on SQLite and PostgreSQL: `make test-dialogues`."
        )
        lines += ["", "```", d["summary"], "```", "", f"Reproduce: `{d['command']}`", ""]

    speed = s.get("speed")
    if speed:
        _speed(lines, speed, data, out, quick)
    length = s.get("length")
    if length:
        _length(lines, length, data, out)
    _resources(lines, s, data, out)

    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    return text, headline_text(data)


def _understanding(lines: List[str], u: Dict[str, Any], data: Dict[str, Any], out: Path) -> None:
    rasa, base = u["rasa"], u["baselines"]
    models = base["models"]
    lines += [f"## Understanding{_stale(u, data)}", ""]
    lines.append(
        f"Held-out sentences: {base['heldout_sentences']} in `tests/nlu/` (never trained on); training examples: "
        f"{base['training_examples']} in `data/nlu/`. The model's scores are Rasa's own report "
        f"(`{rasa['source']}/intent_report.json`, {'reused: newer than the model' if rasa['reused'] else 'run now'}). "
        "The baselines are what an office could buy instead: TF-IDF over character 1–3-grams of the training "
        "examples with a nearest neighbour (FAQ retrieval: the intent of the most similar training question) or a "
        "linear SVM, and the BM25 FAQ index of `bot/faq.py` (the intent of the top knowledge entry; it indexes only "
        "topic entries, so greetings, thanks, hand-off and follow-ups have no entry to find). Macro-F1 over the "
        "held-out intents, as Rasa computes it; retrieval intents (chitchat/…) count as `chitchat`, as in Rasa's "
        "report."
    )
    lines.append("")
    rows = [["Rasa model (models/anju.tar.gz)", f"{rasa['macro_f1']:.3f}", f"{rasa['accuracy']:.3f}", "see speed"]]
    rows += [[m["name"], f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}", f"{m['ms_per_sentence']:.2f}"] for m in models]
    lines += _table(["classifier", "macro-F1", "accuracy", "ms / sentence"], rows)
    _figure(lines, plots.f1_by_intent(u, out / "f1_by_intent.png"), "per-intent F1", f"{BENCH} --only understanding")
    lines += ["Rasa's confusion matrix (copied from its output):"]
    _figure(lines, "intent_confusion_matrix.png", "intent confusion matrix", rasa["command"])
    per = rasa["per_intent"]
    header = ["intent", "n", "model P", "model R", "model F1"] + [
        m["name"].replace("TF-IDF char 1-3, ", "TF-IDF ").replace(" (bot/faq.py)", "") + " F1" for m in models
    ]
    rows = []
    for intent in sorted(per, key=lambda k: (per[k]["f1"], k)):
        r = per[intent]
        confused = ", ".join(f"{k}×{v}" for k, v in r["confused_with"].items())
        rows.append(
            [f"`{intent}`", r["support"], f"{r['precision']:.2f}", f"{r['recall']:.2f}", f"**{r['f1']:.2f}**"]
            + [f"{m['per_intent'].get(intent, 0.0):.2f}" for m in models]
            + [confused]
        )
    lines += ["Per intent, worst first (the model's confusions from Rasa's report):", ""]
    lines += _table(header + ["model confused with"], rows)
    lines += [
        "",
        f"Reproduce: `{BENCH} --only understanding` (the model's table alone: "
        f"`.venv/bin/python tools/check_nlu_report.py {rasa['source']}/intent_report.json`)",
        "",
    ]


def _speed(lines: List[str], speed: Dict[str, Any], data: Dict[str, Any], out: Path, quick: str) -> None:
    cells = speed["cells"]
    lines += [f"## Speed{_stale(speed, data)}", ""]
    lines.append(
        f"At each level every path gets {speed.get('rounds', 1)} × ({speed.get('ramp', 0):g} s of load, then a "
        f"{speed['seconds']:g} s measuring window): the three paths take turns (their order turning each round) in "
        "the same run on the same stack, so a change of load on the machine falls on all three alike. Only messages "
        "answered inside a window count; those still in flight at its end are awaited, so the next path starts on "
        "an idle stack. Client *i* sends the same messages whatever the path "
        "(tools/soak.py's mix: held-out questions, follow-ups, now and then the household check with the demo ledger) "
        "and opens a new conversation every 3 messages, as residents do. Paths: "
        + "; ".join(f"**{t}** = {TARGET_LABELS[t]}" for t in TARGETS)
        + " — `/api/chat`; `POST /webhooks/gateway/webhook` (Rasa's REST contract, the conversation id the gateway "
        "would send, each conversation on one Rasa server); `POST /webhooks/gateway/parse` (NLU only, like "
        "`/model/parse`; clients spread over the Rasa servers). Messages/s counts answered messages (HTTP 200 with "
        "text, or with an intent for the parse); the percentiles are over every request."
    )
    lines.append("")
    rows = []
    for clients in speed["levels"]:
        row = [clients]
        for t in TARGETS:
            c = _cell(speed, t, clients)
            errors = sum(c["errors"].values()) if c else 0
            row.append(f"{c['messages_per_s']:.1f}" + (f" ({errors} err)" if errors else "") if c else "")
        for a in ("gateway", "rest"):
            r = _ratio(speed, a, "parse", clients)
            row.append(f"{r:.2f}×" if r is not None else "")
        for t in TARGETS:
            c = _cell(speed, t, clients)
            row.append(f"{c['p50_ms']:.0f} / {c['p95_ms']:.0f} / {c['p99_ms']:.0f}" if c else "")
        rows.append(row)
    header = [
        "clients",
        "gateway msg/s",
        "REST msg/s",
        "parse msg/s",
        "gateway / parse",
        "REST / parse",
        "gateway p50/p95/p99 ms",
        "REST p50/p95/p99 ms",
        "parse p50/p95/p99 ms",
    ]
    lines += _table(header, rows)
    errors = [(c["target"], c["clients"], c["errors"]) for c in cells if c["errors"]]
    if errors:
        lines += ["", "Errors: " + "; ".join(f"{t} at {n}: {e}" for t, n, e in errors)]
    command = f"{BENCH} --only speed{quick}"
    _figure(lines, plots.throughput(cells, out / "throughput.png"), "throughput", command)
    _figure(lines, plots.latency(cells, out / "latency.png"), "latency percentiles", command)


def _length(lines: List[str], length: Dict[str, Any], data: Dict[str, Any], out: Path) -> None:
    lines += [f"## Latency against conversation length{_stale(length, data)}", ""]
    failures = length["failures"]
    lines.append(
        f"One conversation of {length['messages']} messages through the gateway, one after another (a held-out "
        "question, then none to two follow-ups, over and over; no household check). Median of the first "
        f"{length['window']}: {length['median_first_ms']:.0f} ms; of the last {length['window']}: "
        f"{length['median_last_ms']:.0f} ms; **growth {length['growth']:.2f}×** (target ≤ {GROWTH_TARGET}×). "
        + (f"Replies that were not answers: {failures}." if failures else "Every message was answered.")
        + (
            " After each message the same message was also sent as a new conversation of its own (the control, grey):"
            " load from elsewhere on the machine slows both, the length of the conversation only the first; the median"
            f" of long/control over the last {length['window']} against the first is "
            f"**{length['paired_growth']:.2f}×**."
            if length.get("paired_growth")
            else ""
        )
    )
    _figure(
        lines,
        plots.conversation_length(length, out / "conversation_length.png"),
        "latency by message index",
        f"{BENCH} --only length",
    )
    profile = length.get("profile") or {}
    lines += ["### Profile of the Rasa server during this conversation and its control", ""]
    if not profile.get("available"):
        lines += ["py-spy is not installed (`.venv/bin/pip install py-spy`) or `--no-profile` was given.", ""]
    elif profile.get("error"):
        lines += [profile["error"], ""]
    else:
        lines.append(
            f"py-spy record, 100 samples/s, idle threads left out ({profile['samples']} samples); raw collapsed "
            f"stacks in {', '.join(f'`{f}`' for f in profile['files'])} (open them in speedscope.app or "
            f"flamegraph.pl). {100 * profile.get('event_loop', 0):.1f}% of the samples have no Python frame below the "
            "server (the event loop itself). The frames every request sits under (CLI, Sanic, asyncio, threads, "
            "dask) are left out; share of all samples on which a function is on the stack (inclusive) or at its top "
            "(self):"
        )
        lines.append("")
        rows = [[f"{100 * s:.1f}%", f"`{n}`"] for n, s in profile["inclusive"]]
        lines += _table(["inclusive", "function"], rows) + [""]
        rows = [[f"{100 * s:.1f}%", f"`{n}`"] for n, s in profile["self"]]
        lines += _table(["self", "function"], rows)
        lines += ["", f"Reproduce: `{BENCH} --only length`", ""]
    lines += [
        "What earlier profiles of this conversation showed, and what was done (README: Where conversations are kept,"
        " Scaling; `.venv/bin/python tools/turn_cost.py --profile results/bench/turn_cost_profile.txt` profiles the"
        " Rasa server and the action server again):",
        "",
        "- loading the whole tracker each turn (39% of Rasa's busy time) and featurising all of it: a bounded window"
        " (`policies/tracker_store.py`), and what precedes it found by one index seek per kind of event;",
        "- Rasa's lookup of each stored event's class by walking every subclass of `Event` (3–8 ms a turn):"
        " remembered (`policies/event_types.py`);",
        "- jsonschema re-checking its metaschema on every action reply (about 30% of Rasa's CPU under load): checked"
        " once (`policies/action_validation.py`);",
        "- masking every event of the tracker at every save, and SQLAlchemy opening the SQLite file anew for every"
        " session: only new events are masked, one pooled connection;",
        '- the action server\'s second NLU pass for the clause of a follow-up ("那在省内呢" → "在省内"; 42% of the'
        " action server's time, as dear on Rasa as the message itself): remembered by model id and clause"
        " (`actions/respond.py` ParseCache).",
        "",
    ]


def _resources(lines: List[str], s: Dict[str, Any], data: Dict[str, Any], out: Path) -> None:
    lines += ["## Resources", ""]
    startup = s.get("startup")
    if startup:
        up = ", ".join(f"{k} {v:.0f} s" for k, v in startup["up_after"].items())
        started = len(startup["up_after"])
        lines.append(
            f"- **Cold start**{_stale(startup, data)}: {startup['seconds']:.0f} s from starting the {started} "
            "processes (LocalStack: the commands of the Procfile, with the existing model) to the first answer "
            f"through the gateway; health checks answered after {up} (polled every second, in that order). "
            "`make run` adds its checks before that (install, `rasa train --dry-run`, migrations, demo ledger). "
            f"Reproduce: `{BENCH} --only startup`"
        )
    t = s.get("train")
    if t:
        lines.append(
            f"- **`rasa train`** from an empty cache into a temporary directory: {t['seconds']:.0f} s, model "
            f"{t['model_mb']:.0f} MB ({_when(t, data)}). `make train` retrains only when "
            f"something changed, reusing `.rasa/`'s cache. Reproduce: `{t['command']}`"
        )
    else:
        lines.append(f"- **`rasa train`**: not measured (`make bench TRAIN=1` or `{BENCH} --only train --train`).")
    if s.get("model"):
        lines.append(f"- **Model size**: `{s['model']['path']}` {s['model']['size_mb']:.1f} MB.")
    i = s.get("import")
    if i:
        lines.append(
            f"- **Ledger import**{_stale(i, data)}: {i['households']} households with {i['members']} members "
            f"(tools/make_demo_ledger.py's synthetic ledger) into a fresh SQLite database in {i['seconds']:.2f} s; "
            f"peak RSS of the importing process {i['peak_rss_mb']:.0f} MB ({i['rss_before_mb']:.0f} MB before the "
            f"import began). Reproduce: `{i['command']}`"
        )
    m = s.get("memory")
    if m:
        lines.append(
            f"- **Memory**{_stale(m, data)}: RSS of every process at the start, after the {m['after']}th message "
            f"through the gateway or the REST channel (of {m['messages']} in the run), and at the end."
        )
        snapshots = {k: v for k, v in m["snapshots"].items() if v}
        processes = sorted({p for v in snapshots.values() for p in v})
        lines.append("")
        lines += _table(
            ["RSS (MB)", *processes, "total"],
            [
                [phase, *(f"{v.get(p, 0):.0f}" for p in processes), f"{sum(v.values()):.0f}"]
                for phase, v in snapshots.items()
            ],
        )
        _figure(lines, plots.memory(snapshots, out / "memory.png"), "memory", f"{BENCH} --only memory")
    lines.append("")
