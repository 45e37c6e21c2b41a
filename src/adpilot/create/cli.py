"""``adpilot creative …``: generate copy into the store, evaluate against references, show an ad's creatives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adpilot.create.base import DEFAULT_REPEAT_PENALTY
from adpilot.errors import UserError

if TYPE_CHECKING:
    from adpilot.config import Settings
    from adpilot.create.cache import CachedLLM
    from adpilot.create.retrieval import CopyPool
    from adpilot.create.selector import Selector

group = typer.Typer(help="LLM-written ad copy: generate, evaluate, show.", no_args_is_help=True)

Backend = Annotated[str | None, typer.Option(help="local | openai | template (default: ADPILOT_LLM_BACKEND)")]
ModelPath = Annotated[Path | None, typer.Option("--model", help="a GGUF file (local backend)")]
AdapterOption = Annotated[str | None, typer.Option(
    "--adapter", help="local backend's LoRA adapter: auto (the shipped one on the default model), none, or an "
                      ".npz from `fit-adapter` (default: ADPILOT_LLM_ADAPTER)")]
Variants = Annotated[int, typer.Option("--n", help="variants generated per (ad, audience)")]
Shots = Annotated[int, typer.Option("--k", help="retrieved few-shot examples")]
Seed = Annotated[int, typer.Option(help="sampling seed")]
Encoder = Annotated[str, typer.Option(help="retrieval similarity: tfidf | e5 | use")]
Penalty = Annotated[float, typer.Option(help="llama.cpp repeat penalty (1.0 = none: the 0.5B model then loops)")]
Extractive = Annotated[bool, typer.Option(help="also let a copy assembled from the retrieved neighbours' sentences "
                                                "compete in selection (stored with source 'retrieval')")]
Fusion = Annotated[bool, typer.Option(help="put first a copy fused from the drafts' sentences that agree most "
                                            "with the retrieved copies (no extra model call)")]
Hybrid = Annotated[bool, typer.Option(help="also fuse the drafts' sentences with the same-type neighbours' human "
                                            "sentences (stored with source 'retrieval')")]
SelectorOption = Annotated[str, typer.Option(
    "--selector", help="rank candidates by learned weights: 'shipped' (create/selector.json when present), "
                       "'none' (fused copy first, then consensus), or a JSON file from `fit-selector`")]
GreedyFirst = Annotated[bool, typer.Option(help="draft 0 is the greedy completion, the others sampled")]
ShotWindows = Annotated[bool, typer.Option(help="each draft is the greedy completion of its own shots: the nearest "
                                                "example plus its own window of the next neighbours (off: sampled "
                                                "drafts from one prompt)")]
Cover = Annotated[bool, typer.Option(help="a draft that leaves out attribute values gets more completions "
                                          "naming them, kept beside it: a plain one and, on the local model, one "
                                          "steered towards the values (two model calls each)")]
Threads = Annotated[int | None, typer.Option(help="llama.cpp threads (default: ADPILOT_LLM_THREADS); 1 is "
                                                  "much faster than 2 on a busy machine")]


def _settings(threads: int | None) -> Settings:
    from adpilot.config import get_settings

    settings = get_settings()
    return settings if threads is None else settings.model_copy(update={"llm_threads": threads})


def _selector(choice: str) -> Selector | None:
    from adpilot.create.selector import Selector, default_selector

    if choice == "none":
        return None
    return default_selector() if choice == "shipped" else Selector.load(choice)


def _file_cached_llm(settings: Settings, cache: Path | None, backend: str | None, model: Path | None,
                     repeat_penalty: float, adapter: str | None) -> CachedLLM:
    """The chosen model behind a completion cache in a DuckDB file of its own (default: the settings' home)."""
    import duckdb

    from adpilot.create.cache import CachedLLM
    from adpilot.create.factory import make_llm

    cache_path = cache or settings.home / "create_cache.duckdb"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    return CachedLLM(make_llm(settings, backend, model, repeat_penalty, adapter), duckdb.connect(str(cache_path)))


def _pool(examples: list, k: int, encoder: str) -> CopyPool:
    from adpilot.create.retrieval import CopyPool

    if encoder not in ("tfidf", "e5", "use"):
        raise UserError(f"`--encoder` must be tfidf, e5 or use, got {encoder!r}")
    text_encoder = None
    if encoder != "tfidf":
        from adpilot.understand.registry import get_encoder

        text_encoder = get_encoder(encoder)
    return CopyPool(k=k, encoder=text_encoder).fit(examples)


@group.command()
def generate(
    campaign: Annotated[str | None, typer.Option(help="every ad of this campaign")] = None,
    product: Annotated[str | None, typer.Option(help="every ad of this product")] = None,
    ad: Annotated[str | None, typer.Option(help="one ad")] = None,
    segments: Annotated[bool, typer.Option(help="one set per segment as well as the general audience")] = True,
    backend: Backend = None, model: ModelPath = None, adapter: AdapterOption = None, n: Variants = 3,
    k: Shots = 3,
    pool: Annotated[Path | None, typer.Option(help="copy corpus JSONL (default: human creatives in the store)")]
    = None,
    slot: Annotated[str, typer.Option(help="banner | title | feed | detail")] = "feed",
    max_tokens: int = 160, temperature: float = 0.8, repeat_penalty: Penalty = DEFAULT_REPEAT_PENALTY, seed: Seed = 0,
    fluency: Annotated[bool, typer.Option(help="score perplexity under the local model")] = False,
    encoder: Encoder = "tfidf", threads: Threads = None, extractive: Extractive = False,
    greedy_first: GreedyFirst = False, fusion: Fusion = True, hybrid: Hybrid = False,
    selector: SelectorOption = "none", shot_windows: ShotWindows = True, cover: Cover = True,
) -> None:
    """Write copy for a campaign × segments (or one product / ad) into `creatives`; resumable and cached."""
    from adpilot.create.cache import CachedLLM
    from adpilot.create.evaluate import typical_length
    from adpilot.create.factory import make_llm
    from adpilot.create.prompts import CopySpec
    from adpilot.create.retrieval import read_examples
    from adpilot.create.studio import Studio, human_pool, jobs
    from adpilot.create.writer import CopyWriter
    from adpilot.store.db import Store

    CopySpec(slot=slot)  # validates the slot before any model loads
    settings = _settings(threads)
    with Store(settings.resolved_store_path) as store:
        todo = jobs(store.con, campaign, product, ad, with_segments=segments)
        llm = make_llm(settings, backend, model, repeat_penalty, adapter)
        cached = CachedLLM(llm, store.con)
        examples = read_examples(pool) if pool is not None else human_pool(store.con)
        index = _pool(examples, k, encoder) if examples and k > 0 else None
        text_encoder = index.encoder if index is not None else None
        perplexity = getattr(llm, "perplexity", None) if fluency else None
        writer = CopyWriter(cached, n=n, max_tokens=max_tokens, temperature=temperature, encoder=text_encoder,
                            target_chars=typical_length(examples) or None, extractive=extractive,
                            greedy_first=greedy_first, fusion=fusion, hybrid=hybrid, selector=_selector(selector),
                            shot_windows=shot_windows, cover=cover)
        studio = Studio(store.con, writer,
                        index, slot=slot, seed=seed, perplexity=perplexity)
        with typer.progressbar(length=len(todo), label=f"writing with {llm.name}") as bar:
            stats = studio.run(todo, on_progress=bar.update)
    typer.echo(f"pairs {stats.pairs} (skipped as done {stats.skipped}); creatives written {stats.written}; "
               f"rejected drafts {stats.rejected}; actions {json.dumps(stats.actions)}; "
               f"cache hits {cached.hits}/{cached.hits + cached.misses}")


@group.command("eval")
def evaluate_command(
    refs: Annotated[Path, typer.Option(help="reference JSONL {content, summary}")],
    pool: Annotated[Path | None, typer.Option(help="few-shot pool JSONL (default: leave-one-out over refs)")]
    = None,
    limit: Annotated[int | None, typer.Option(help="evaluate a seeded random subset of this size")] = None,
    offset: Annotated[int, typer.Option(help="start at this position of the sampled order (tune on pairs "
                                             "other than the reported prefix)")] = 0,
    backend: Backend = None, model: ModelPath = None, adapter: AdapterOption = None, n: Variants = 3,
    k: Shots = 3, seed: Seed = 0,
    max_tokens: int = 128, temperature: float = 0.8, repeat_penalty: Penalty = DEFAULT_REPEAT_PENALTY,
    baseline: Annotated[str | None, typer.Option(help="no LLM: 'nearest' outputs the nearest pool copy, "
                                                      "'extractive' the copy assembled from the neighbours")] = None,
    cache: Annotated[Path | None, typer.Option(help="completion cache (DuckDB file)")] = None,
    out: Annotated[Path | None, typer.Option(help="write outputs and per-item scores as JSONL")] = None,
    threads: Threads = None, extractive: Extractive = False, greedy_first: GreedyFirst = False,
    fusion: Fusion = True, hybrid: Hybrid = False, selector: SelectorOption = "none", shot_windows: ShotWindows = True,
    cover: Cover = True,
    neighbours: Annotated[int, typer.Option(help="retrieved copies the extractive candidate is built from and "
                                                 "selection scores against (k of them are the shots)")] = 10,
    shard: Annotated[str, typer.Option(help="i/m: evaluate every m-th sampled reference from the i-th")] = "0/1",
) -> None:
    """BLEU-4, ROUGE-1/2/L (AdvertiseGen protocol) and violation rate of generated copy against references."""

    from adpilot.create.evaluate import BASELINES, evaluate, typical_length
    from adpilot.create.retrieval import read_examples
    from adpilot.create.writer import CopyWriter

    if baseline not in (None, *BASELINES):
        raise UserError(f"`--baseline` must be one of {BASELINES}, got {baseline!r}")
    try:
        shard_at = tuple(int(x) for x in shard.split("/"))
        if len(shard_at) != 2:
            raise ValueError
    except ValueError:
        raise UserError(f"`--shard` must look like 0/2, got {shard!r}") from None
    references = read_examples(refs)
    examples = read_examples(pool) if pool is not None else None
    settings = _settings(threads)
    writer, cached = None, None
    if baseline is None:
        cached = _file_cached_llm(settings, cache, backend, model, repeat_penalty, adapter)
        writer = CopyWriter(cached, n=n, max_tokens=max_tokens, temperature=temperature,
                            target_chars=typical_length(examples or references) or None, extractive=extractive,
                            greedy_first=greedy_first, fusion=fusion, hybrid=hybrid, selector=_selector(selector),
                            shot_windows=shot_windows, cover=cover)
    total = len(range(shard_at[0], min(limit or len(references), len(references) - offset), shard_at[1]))
    handle = out.open("w", encoding="utf-8") if out is not None else None

    def on_item(_done: int, row: dict) -> None:  # one line per item as it finishes: a killed run keeps its rows
        bar.update(1)
        if handle is not None:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()

    with typer.progressbar(length=total, label="evaluating") as bar:
        try:
            result = evaluate(references, writer, examples, k=k, limit=limit, seed=seed, on_item=on_item,
                              shard=(shard_at[0], shard_at[1]), baseline=baseline or "nearest",
                              neighbours=neighbours, offset=offset)
        finally:
            if handle is not None:
                handle.close()
    setting = f"variants={n} extractive={extractive} fusion={fusion} hybrid={hybrid} selector={selector} " \
        f"model={cached.name}" if cached else \
        f"model={baseline}-copy (no LLM)"
    typer.echo(f"n={len(result.rows)} refs={refs} pool={pool or 'leave-one-out'} k={k} neighbours={neighbours} "
               + setting)
    for name, (mean, low, high) in result.summary(seed).items():
        typer.echo(f"{name:16s} {mean:6.2f}  [95% CI {low:.2f}, {high:.2f}]")
    if cached is not None:
        typer.echo(f"cache hits {cached.hits}/{cached.hits + cached.misses}")


@group.command()
def compare(
    run: Annotated[list[Path], typer.Option(help="`eval --out` JSONL of the run under test (repeat for shards)")],
    against: Annotated[list[Path], typer.Option(help="`eval --out` JSONL of the run to compare with (repeat for "
                                                     "shards)")],
) -> None:
    """Paired comparison of two eval runs over the references both scored: each run's mean per metric and the
    mean difference (run − against) with its 95 % bootstrap interval."""
    from adpilot.create.compare import compare_runs, read_rows

    rows, base = ({i: r for path in paths for i, r in read_rows(path).items()} for paths in (run, against))
    shared = len(rows.keys() & base.keys())
    typer.echo(f"paired over {shared} references ({len(rows) - shared} only in --run, {len(base) - shared} only "
               f"in --against)")
    for c in compare_runs(rows, base):
        typer.echo(f"{c.metric:18s} {c.mean_a:6.2f} vs {c.mean_b:6.2f}  diff {c.difference:+.2f}  "
                   f"[95% CI {c.lower:+.2f}, {c.upper:+.2f}]")


@group.command("fit-selector")
def fit_selector(
    refs: Annotated[Path, typer.Option(help="reference JSONL {content, summary}")],
    pool: Annotated[Path | None, typer.Option(help="few-shot pool JSONL (default: leave-one-out over refs)")]
    = None,
    offset: Annotated[int, typer.Option(help="first position of the sampled order to train on (the reported "
                                             "prefix is refused)")] = 100,
    limit: Annotated[int, typer.Option(help="training pairs from --offset")] = 200,
    out: Annotated[Path | None, typer.Option(help="weights JSON (default: the shipped create/selector.json)")]
    = None,
    l2: Annotated[float, typer.Option(help="ridge penalty per training pair")] = 3.0,
    backend: Backend = None, model: ModelPath = None, adapter: AdapterOption = None, n: Variants = 3,
    k: Shots = 3, seed: Seed = 0,
    max_tokens: int = 128, temperature: float = 0.8, repeat_penalty: Penalty = DEFAULT_REPEAT_PENALTY,
    cache: Annotated[Path | None, typer.Option(help="completion cache (DuckDB file)")] = None,
    threads: Threads = None, hybrid: Hybrid = True,
    neighbours: Annotated[int, typer.Option(help="retrieved copies (pseudo-references)")] = 10,
) -> None:
    """Fit the learned candidate selector on pairs outside the reported prefix and write its weights."""
    import sys

    from adpilot.create.evaluate import selector_groups, typical_length
    from adpilot.create.retrieval import read_examples
    from adpilot.create.selector import DEFAULT_PATH, Selector, cross_validate
    from adpilot.create.writer import CopyWriter

    references = read_examples(refs)
    examples = read_examples(pool) if pool is not None else None
    settings = _settings(threads)
    cached = _file_cached_llm(settings, cache, backend, model, repeat_penalty, adapter)
    writer = CopyWriter(cached, n=n, max_tokens=max_tokens, temperature=temperature, fusion=True, hybrid=hybrid,
                        target_chars=typical_length(examples or references) or None)
    with typer.progressbar(length=min(limit, len(references) - offset), label="candidates") as bar:
        groups = selector_groups(references, writer, examples, k=k, limit=limit, seed=seed, offset=offset,
                                 neighbours=neighbours, on_item=lambda _done: bar.update(1))
    command = "adpilot " + " ".join(sys.argv[1:])
    provenance = {"command": command, "refs": refs.name, "offset": offset, "pairs": len(groups),
                  "candidates": int(sum(len(y) for _, y in groups)), "n": n, "k": k, "hybrid": hybrid, "l2": l2,
                  "model": cached.name, "target": "char BLEU-4 of each candidate against its own reference"}
    provenance["leave_one_pair_out_bleu4"] = cross_validate(groups, l2)
    path = Selector.fit(groups, l2=l2, provenance=provenance).save(out or DEFAULT_PATH)
    typer.echo(f"selector fitted on {len(groups)} pairs ({provenance['candidates']} candidates) at positions "
               f"{offset}..{offset + limit - 1} -> {path}; leave-one-pair-out BLEU-4 "
               f"{json.dumps(provenance['leave_one_pair_out_bleu4'])}; cache hits {cached.hits}/"
               f"{cached.hits + cached.misses}")


@group.command("fit-adapter")
def fit_adapter_command(
    refs: Annotated[Path, typer.Option(help="(brief, copy) JSONL {content, summary} to train on")],
    offset: Annotated[int, typer.Option(help="first position of the sampled order to train on (the reported "
                                             "prefix is refused)")] = 100,
    limit: Annotated[int | None, typer.Option(help="training pairs from --offset (default: all the rest)")] = None,
    out: Annotated[Path | None, typer.Option(help="adapter .npz (default: the shipped create/adapters/"
                                                  "advertisegen.npz)")] = None,
    model: ModelPath = None, k: Shots = 3, seed: Seed = 0,
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (the update is alpha / rank · B A)")] = 16.0,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate")] = 2e-4,
    epochs: Annotated[float, typer.Option(help="passes over the pairs")] = 1.0,
    init: Annotated[Path | None, typer.Option(help="continue training this adapter .npz (same rank)")] = None,
    extra: Annotated[Path | None, typer.Option(help="more (brief, copy) pairs from another corpus: a JSONL like "
                                                    "--refs or a KOBE / TaoDescribe folder")] = None,
    extra_limit: Annotated[int | None, typer.Option(min=0, help="only the --extra pairs whose products read most "
                                                                 "like the training pairs' (default: all)")] = None,
    threads: Threads = None,
) -> None:
    """Train the local model's LoRA adapter on (brief → copy) pairs, prompted exactly as the writer prompts."""
    import sys

    from adpilot.create.local import LocalLLM
    from adpilot.create.lora import SHIPPED, AdapterConfig, read_extra, train_command
    from adpilot.create.retrieval import read_examples

    settings = _settings(threads)
    config = AdapterConfig(rank=rank, alpha=alpha, learning_rate=learning_rate, epochs=epochs, k=k, seed=seed)
    base = LocalLLM(model or settings.llm_model_path, adapter="none").path
    path = train_command(base, read_examples(refs), offset, limit, config, out or SHIPPED,
                         "adpilot " + " ".join(sys.argv[1:]), threads=settings.llm_threads, progress=typer.echo,
                         init=init, extra=read_extra(extra) if extra is not None else (),
                         extra_limit=extra_limit)
    typer.echo(f"adapter -> {path}")


@group.command()
def show(ad: Annotated[str, typer.Argument(help="ad id")]) -> None:
    """Print an ad's creatives with their scores, and how many drafts were rejected and why."""
    from adpilot.config import get_settings
    from adpilot.create.studio import table_exists
    from adpilot.store.db import Store

    with Store(get_settings().resolved_store_path) as store:
        rows = store.con.execute("SELECT creative_id, audience, source, model, text, scores FROM creatives "
                                 "WHERE ad_id = ? ORDER BY audience, creative_id", [ad]).fetchall()
        if not rows:
            raise UserError(f"ad {ad!r} has no creatives")
        for cid, audience, source, model, text, scores in rows:
            typer.echo(f"{cid}  [{audience}] {source}/{model}  {scores}\n    {text}")
        rejected = [] if not table_exists(store.con, "creative_decisions") else store.con.execute("SELECT reasons FROM creative_decisions WHERE ad_id = ? AND action = "
                                     "'rejected'", [ad]).fetchall()
        if rejected:
            typer.echo(f"rejected drafts: {len(rejected)}: " + "; ".join(r[0] for r in rejected[:5]))


def register(app: typer.Typer) -> None:
    """Mount ``adpilot creative``."""
    app.add_typer(group, name="creative")
