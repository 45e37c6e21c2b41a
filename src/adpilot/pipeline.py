"""The main job, end to end: world → ingest → product vectors → profiles → segments → train → creatives →
simulate → report. ``make demo`` runs :func:`run_demo` through ``adpilot demo``.

Each step is a call into its room; this module only sequences them and reports what each did, so that a user can
run the same steps one by one with the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adpilot.config import Settings
from adpilot.store import Store

WORLD_FILES = ("products", "users", "advertisers", "campaigns", "ads", "creatives", "events")


@dataclass(frozen=True)
class DemoConfig:
    """Size of the demo shop and of its simulation. Defaults finish well inside 15 minutes on 2 cores."""

    home: Path = Path("data/demo")
    users: int = 5_000
    events: int = 200_000
    days: int = 30
    seed: int = 0
    creatives_per_ad: int = 2
    llm_ads: int = 8
    sim_days: int = 2
    sim_requests_per_day: int = 4_000


@dataclass
class StepLog:
    """Seconds and one-line summary per step, printed as the job goes."""

    rows: list[tuple[str, float, str]] = field(default_factory=list)
    echo: Callable[[str], None] = print

    def run(self, name: str, step: Callable[[], str]) -> None:
        self.echo(f"▶ {name} …")
        started = time.perf_counter()
        summary = step()
        seconds = time.perf_counter() - started
        self.rows.append((name, seconds, summary))
        self.echo(f"  {name}: {summary} ({seconds:.1f} s)")


def world_step(config: DemoConfig) -> Callable[[], str]:
    def step() -> str:
        from adpilot.datasets.world import WorldConfig, write_world

        stats = write_world(config.home / "world", WorldConfig(
            n_users=config.users, n_events=config.events, n_days=config.days, seed=config.seed))
        return f"{stats.n_events:,} events, {stats.n_users:,} users, {stats.n_products:,} products, {stats.n_ads} ads"

    return step


def ingest_step(config: DemoConfig, store: Store, settings: Settings) -> Callable[[], str]:
    def step() -> str:
        from adpilot.store.ingest import ingest_file

        parts = []
        for name in WORLD_FILES:
            path = config.home / "world" / f"{name}.parquet"
            if path.exists():
                report = ingest_file(store, path, kind=name, settings=settings)
                parts.append(f"{name} {report.accepted:,}")
        return "accepted " + ", ".join(parts)

    return step


def understand_step(store: Store, settings: Settings, config: DemoConfig) -> Callable[[], str]:
    def step() -> str:
        from adpilot.understand.anomalies import flag_users
        from adpilot.understand.items import build_product_vectors
        from adpilot.understand.profiles import build_profiles
        from adpilot.understand.registry import get_encoder
        from adpilot.understand.segments import build_segments

        encoder = get_encoder(settings.encoder, settings)
        n_vectors = build_product_vectors(store, encoder)
        n_profiles = build_profiles(store, encoder)
        segments = build_segments(store, random_state=config.seed)
        flagged = int(flag_users(store)["flagged"].sum())
        return (f"{n_vectors} product vectors ({encoder.name}), {n_profiles:,} profiles, "
                f"{segments.k} segments, {flagged} users flagged as bots")

    return step


def train_step(store: Store, settings: Settings, out: Path) -> Callable[[], str]:
    """Fit the serving scorer on the logged (uniformly random) ad impressions of users not flagged as bots:
    P(click) and P(conversion | click) from the cosine of the user's interest vector with the ad's product vector."""

    def step() -> str:
        import numpy as np
        import pandas as pd

        from adpilot.deliver.scorer import SimilarityScorer
        from adpilot.rank.readers import store_impressions
        from adpilot.understand.interest import load_interest_vectors
        from adpilot.understand.items import load_product_vectors

        logged = store_impressions(store.con)
        pv_ids, pv = load_product_vectors(store, settings.encoder)
        row_of = {p: i for i, p in enumerate(pv_ids)}
        profiled, vectors = load_interest_vectors(store)
        user_row = pd.Index(profiled).get_indexer(logged["user_id"])
        user_vecs = np.zeros((len(logged), pv.shape[1]), np.float32)
        user_vecs[user_row >= 0] = vectors[user_row[user_row >= 0]]
        ad_vecs = pv[[row_of[p] for p in logged["item_id"]]]
        sim = (user_vecs * ad_vecs).sum(axis=1)
        scorer = SimilarityScorer().fit(sim, np.zeros(len(sim)), np.full(len(sim), np.nan),
                                        logged["click"].to_numpy(), converted=logged["conversion"].to_numpy())
        out.parent.mkdir(parents=True, exist_ok=True)
        scorer.save(out)
        return (f"{len(logged):,} logged impressions, {int(logged['click'].sum()):,} clicks → {out} "
                f"(click weight on interest similarity {float(scorer.ctr_coef_[0]):.2f})")

    return step


def creatives_step(store: Store, settings: Settings, config: DemoConfig) -> Callable[[], str]:
    """LLM copy for the ads of the biggest campaigns (general audience), with few-shot examples from the shop's
    human-written creatives; the template writer stands in, labelled, when no local model is installed."""

    def step() -> str:
        from adpilot.create.cache import CachedLLM
        from adpilot.create.factory import make_llm
        from adpilot.create.retrieval import CopyPool
        from adpilot.create.studio import Studio, human_pool, jobs
        from adpilot.create.writer import CopyWriter
        from adpilot.errors import UserError

        ads = [r[0] for r in store.con.execute(
            "SELECT a.ad_id FROM ads a JOIN campaigns c USING (campaign_id) WHERE c.status = 'active' "
            "ORDER BY c.daily_budget DESC, a.ad_id LIMIT ?", [config.llm_ads]).fetchall()]
        todo = [job for ad in ads for job in jobs(store.con, ad_id=ad, with_segments=False)]
        examples = human_pool(store.con)
        pool = CopyPool(k=3).fit(examples) if examples else None

        def write(backend: str | None) -> tuple[str, Any]:
            llm = make_llm(settings, backend=backend)
            writer = CopyWriter(CachedLLM(llm, store.con), n=config.creatives_per_ad, max_tokens=120, temperature=0.8,
                                fusion=True, shot_windows=True, cover=True)
            return llm.name, Studio(store.con, writer, pool, slot="feed", seed=config.seed).run(todo)

        try:
            (name, stats), note = write(None), ""
        except UserError as missing:  # e.g. no local model installed: say so, and label the copy as template
            (name, stats), note = write("template"), f" (local model unavailable: {missing})"
        return (f"{stats.written} creatives by {name} for {len(ads)} ads, {stats.rejected} drafts rejected, "
                f"actions {stats.actions}{note}")

    return step


def simulate_step(store: Store, settings: Settings, config: DemoConfig, scorer_path: Path,
                  results: dict[str, Any]) -> Callable[[], str]:
    """Compare untargeted, popularity, rule targeting and the full path on the world's last days."""

    def step() -> str:
        from adpilot.datasets.world import World
        from adpilot.deliver.engine import EngineConfig
        from adpilot.deliver.scorer import SimilarityScorer
        from adpilot.deliver.snapshot import Snapshot
        from adpilot.measure.simulate import UNTARGETED, ConstantScorer, PopularityScorer, SimPolicy, simulate
        from adpilot.rank.readers import store_impressions
        from adpilot.understand.registry import get_encoder

        world = World.load(config.home / "world")
        encoder = get_encoder(settings.encoder, settings)
        logged = store_impressions(store.con)
        ctr = float(logged["click"].mean())
        cvr = float(logged["conversion"].sum() / max(int(logged["click"].sum()), 1))
        policies = [
            SimPolicy("untargeted", ConstantScorer(ctr, cvr), personalised=False, contextual=False,
                      config=EngineConfig(skip_filters=UNTARGETED)),
            SimPolicy("popularity", PopularityScorer(ctr, cvr), personalised=False, contextual=False,
                      config=EngineConfig(skip_filters=UNTARGETED)),
            SimPolicy("rules", PopularityScorer(ctr, cvr), personalised=True, contextual=False),
            SimPolicy("adpilot", SimilarityScorer.load(scorer_path), personalised=True, contextual=True),
        ]
        budgets = store.con.execute("SELECT campaign_id, total_budget, daily_budget FROM campaigns").df()
        days = list(range(config.days - config.sim_days, config.days))
        result = simulate(world, lambda scorer: Snapshot.from_store(store, scorer, encoder), policies, settings,
                          days, config.sim_requests_per_day, seed=config.seed, budgets=budgets)
        results["simulation"] = result
        results["summary"] = table = result.summary("untargeted", seed=config.seed)
        full = table.set_index("policy").loc["adpilot"]
        return (f"{len(days)} days x {config.sim_requests_per_day:,} requests x {len(policies)} policies; "
                f"adpilot CTR lift {full['ctr_lift']:+.0%} [{full['ctr_lift_lo']:+.0%}, {full['ctr_lift_hi']:+.0%}], "
                f"CVR lift {full['cvr_lift']:+.0%}; max overspend {result.overspend():.2%}")

    return step


def report_step(store: Store, settings: Settings, config: DemoConfig, results: dict[str, Any]) -> Callable[[], str]:
    """Write the run folder (lift, pacing, calibration, segment map, creatives) and build the HTML report."""

    def step() -> str:
        import pandas as pd

        from adpilot.measure.report import build_report
        from adpilot.understand.interest import load_interest_vectors

        run = config.home / "runs" / "demo"
        run.mkdir(parents=True, exist_ok=True)
        summary = results["summary"]
        lift = pd.concat([pd.DataFrame({"policy": summary["policy"], "metric": f"{m.upper()} lift vs untargeted",
                                        "value": summary[f"{m}_lift"], "lower": summary[f"{m}_lift_lo"],
                                        "upper": summary[f"{m}_lift_hi"]}) for m in ("ctr", "cvr")])
        lift.to_parquet(run / "lift.parquet")
        sim = results["simulation"]
        sim.pacing("adpilot").to_parquet(run / "pacing.parquet")
        imps = sim.impressions
        full = imps[(imps["policy"] == "adpilot") & ~imps["bot"]]  # bots click at will: calibrate on shoppers
        pd.DataFrame({"label": full["clicked"].astype(int), "pctr": full["pctr"]}).to_parquet(
            run / "calibration.parquet")
        sample = store.con.execute(
            "SELECT user_id, coalesce(s.description, 'none') AS segment FROM profiles p "
            "LEFT JOIN segments s USING (segment_id) WHERE interest_vector IS NOT NULL "
            "USING SAMPLE 3000 ROWS (reservoir, 7)").df().set_index("user_id")
        ids, vectors = load_interest_vectors(store, sample.index.tolist())  # unit rows, not the stored codes
        pd.DataFrame({"vector": list(vectors), "segment": sample.loc[ids, "segment"].to_numpy()}).to_parquet(
            run / "segments.parquet")
        store.con.execute(
            "SELECT creative_id, ad_id, text, source, scores FROM creatives ORDER BY ad_id LIMIT 200"
        ).df().to_parquet(run / "creatives.parquet")
        command = (f"adpilot demo --home {config.home} --users {config.users} --events {config.events} "
                   f"--seed {config.seed} --encoder {settings.encoder}")
        for kind in ("lift", "pacing", "calibration", "segments", "creatives"):
            (run / f"{kind}.command").write_text(command + "\n")
        html, pngs = build_report(run, title="adpilot demo")
        results["report"] = html
        return f"{html} ({len(pngs)} plots)"

    return step


def run_demo(config: DemoConfig, settings: Settings, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step on a fresh demo folder; returns the step log and the report path."""
    config.home.mkdir(parents=True, exist_ok=True)
    store_path = config.home / "adpilot.duckdb"
    for stale in (store_path, store_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    log = StepLog(echo=echo)
    log.run("world", world_step(config))
    with Store(store_path) as store:
        log.run("ingest", ingest_step(config, store, settings))
        log.run("understand", understand_step(store, settings, config))
        scorer_path = config.home / "models" / "scorer.json"
        log.run("train", train_step(store, settings, scorer_path))
        log.run("creatives", creatives_step(store, settings, config))
        results: dict[str, Any] = {}
        log.run("simulate", simulate_step(store, settings, config, scorer_path, results))
        log.run("report", report_step(store, settings, config, results))
    return {"steps": log.rows, "store": store_path, **results}


def print_summary(result: dict[str, Any], echo: Callable[[str], None] = print) -> None:
    """The demo's closing table: policies x CTR, CVR, ROI and lift with 95% intervals."""
    table = result.get("summary")
    if table is None:
        return
    echo("")
    echo(f"{'policy':<12}{'impr.':>8}{'clicks':>8}{'CTR':>8}{'CVR':>8}{'ROI':>8}  {'CTR lift [95% CI]':<28}"
         f"{'CVR lift [95% CI]':<28}")
    for row in table.itertuples(index=False):
        echo(f"{row.policy:<12}{row.impressions:>8,}{row.clicks:>8,}{row.ctr:>8.2%}{row.cvr:>8.2%}{row.roi:>8.2f}  "
             f"{_lift(row.ctr_lift, row.ctr_lift_lo, row.ctr_lift_hi):<28}"
             f"{_lift(row.cvr_lift, row.cvr_lift_lo, row.cvr_lift_hi):<28}")
    echo("(CTR and CVR are realised; lifts compare the world's true click and conversion probabilities of each "
         "policy's impressions with untargeted delivery on the same requests, 95% paired bootstrap)")
    if "report" in result:
        echo(f"\nreport: {result['report']}")


def _lift(value: float, lo: float, hi: float) -> str:
    return f"{value:+.1%} [{lo:+.1%}, {hi:+.1%}]"
