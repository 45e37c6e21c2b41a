"""The main job end to end on a small world: every step runs, the report exists, adpilot beats untargeted."""

from __future__ import annotations

from pathlib import Path

from adpilot.config import Settings
from adpilot.pipeline import DemoConfig, print_summary, run_demo


def test_demo_runs_end_to_end_and_lifts_ctr(tmp_path: Path) -> None:
    config = DemoConfig(home=tmp_path / "demo", users=1_000, events=30_000, sim_days=1, sim_requests_per_day=1_500,
                        llm_ads=2)
    lines: list[str] = []
    result = run_demo(config, Settings(mode="demo", encoder="use"), echo=lines.append)
    names = [name for name, _, _ in result["steps"]]
    assert names[:4] == ["world", "ingest", "understand", "train"] and names[-2:] == ["simulate", "report"]
    summary = result["summary"].set_index("policy")
    assert list(summary.index) == ["untargeted", "popularity", "rules", "adpilot"]
    assert summary.loc["adpilot", "ctr_lift_lo"] > 0, summary
    assert result["simulation"].overspend() <= 0.001
    page = Path(result["report"]).read_text()
    assert "Reproduce: <code>adpilot demo --home" in page and "Lift by policy" in page
    print_summary(result, echo=lines.append)
    assert any(line.startswith("adpilot") for line in lines)
