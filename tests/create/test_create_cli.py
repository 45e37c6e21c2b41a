"""``adpilot creative generate | eval | show`` end to end on a file store, with the template backend (the
local-model path is covered in test_create_llm.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adpilot.cli import _mount, app
from adpilot.config import get_settings
from adpilot.errors import UserError
from adpilot.store.db import Store

runner = CliRunner()
_mount()


@pytest.fixture()
def store_path(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    path = tmp_path / "store.duckdb"
    monkeypatch.setenv("ADPILOT_STORE_PATH", str(path))
    monkeypatch.setenv("ADPILOT_HOME", str(tmp_path))
    get_settings.cache_clear()
    with Store(path) as s:
        s.con.execute("INSERT INTO products VALUES ('p1', '牛仔外套', NULL, ['服装'], MAP {'颜色': '白色'}, 199.0, "
                      "'Acme', 'zh')")
        s.con.execute("INSERT INTO ads VALUES ('a1', 'c1', 'p1', NULL, 'active')")
    yield path
    get_settings.cache_clear()


def test_generate_then_show_then_resume(store_path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["creative", "generate", "--campaign", "c1", "--backend", "template", "--n", "2"])
    assert result.exit_code == 0, result.output
    assert "creatives written 2" in result.output
    shown = runner.invoke(app, ["creative", "show", "a1"])
    assert shown.exit_code == 0 and "template/template" in shown.output and "牛仔外套" in shown.output
    again = runner.invoke(app, ["creative", "generate", "--campaign", "c1", "--backend", "template"])
    assert "skipped as done 1" in again.output


def test_user_mistakes_are_one_line_errors(store_path) -> None:  # type: ignore[no-untyped-def]
    for args in (["creative", "generate", "--campaign", "nope", "--backend", "template"],
                 ["creative", "generate", "--ad", "a1", "--slot", "billboard"],
                 ["creative", "show", "zzz"],
                 ["creative", "eval", "--refs", str(store_path.parent / "missing.jsonl")]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, UserError), (args, result.output)


def _three_refs(tmp_path):  # type: ignore[no-untyped-def]
    refs = tmp_path / "refs.jsonl"
    rows = [("类型#上衣*颜色#白色*材质#牛仔布", "白色牛仔上衣，简约百搭，日常通勤都合适。"),
            ("类型#上衣*颜色#黑色*材质#棉", "黑色纯棉上衣，柔软透气，穿着舒适自在。"),
            ("类型#裙*颜色#红色", "红色连衣裙，温柔大方，约会出游都好看。")]
    refs.write_text("".join(json.dumps({"content": c, "summary": s}, ensure_ascii=False) + "\n" for c, s in rows),
                    encoding="utf-8")
    return refs


def test_eval_template_and_nearest_baseline(store_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    refs = _three_refs(tmp_path)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["creative", "eval", "--refs", str(refs), "--backend", "template", "--n", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "n=3" in result.output and "bleu-4" in result.output and "violation" in result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    nearest = runner.invoke(app, ["creative", "eval", "--refs", str(refs), "--baseline", "nearest"])
    assert nearest.exit_code == 0 and "nearest-copy" in nearest.output


def test_compare_pairs_two_eval_runs_and_names_bad_files(store_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    refs = _three_refs(tmp_path)
    template, nearest = tmp_path / "template.jsonl", tmp_path / "nearest.jsonl"
    for out, args in ((template, ["--backend", "template"]), (nearest, ["--baseline", "nearest"])):
        assert runner.invoke(app, ["creative", "eval", "--refs", str(refs), "--out", str(out), *args]).exit_code == 0
    half = tmp_path / "half.jsonl"  # a killed run: only some references scored
    half.write_text("".join(nearest.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    result = runner.invoke(app, ["creative", "compare", "--run", str(template), "--against", str(half)])
    assert result.exit_code == 0, result.output
    assert "paired over 2 references (1 only in --run, 0 only in --against)" in result.output
    by_index = {json.loads(line)["index"]: json.loads(line) for line in template.read_text(encoding="utf-8").splitlines()}
    half_rows = [json.loads(line) for line in half.read_text(encoding="utf-8").splitlines()]
    expected = sum(by_index[r["index"]]["bleu-4"] - r["bleu-4"] for r in half_rows) / 2
    assert abs(expected) >= 0.01  # the two runs' copies differ, so a reversed difference would show
    assert f"diff {expected:+.2f}" in next(line for line in result.output.splitlines() if line.startswith("bleu-4"))
    garbled, stranger = tmp_path / "garbled.jsonl", tmp_path / "stranger.jsonl"
    garbled.write_text('{"index": 0, "bleu-4": 1.0}\n{"bleu-4": 2.0}\n', encoding="utf-8")
    stranger.write_text('{"index": 99, "bleu-4": 1.0}\n', encoding="utf-8")
    for against, says in ((tmp_path / "missing.jsonl", "no eval output"), (garbled, "line 2"),
                          (stranger, "share no reference")):
        result = runner.invoke(app, ["creative", "compare", "--run", str(template), "--against", str(against)])
        assert isinstance(result.exception, UserError) and says in str(result.exception), (against, result.output)


def test_fit_selector_writes_weights_that_eval_uses(store_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    refs = tmp_path / "refs.jsonl"
    colours = ("白色", "黑色", "红色", "蓝色", "灰色", "绿色", "粉色", "黄色")
    refs.write_text("".join(json.dumps({"content": f"类型#上衣*颜色#{c}*材质#棉", "summary":
                                        f"{c}纯棉上衣，柔软透气。穿着舒适自在，日常通勤都合适。"}, ensure_ascii=False) + "\n"
                            for c in colours * 7), encoding="utf-8")
    weights = tmp_path / "selector.json"
    fitted = runner.invoke(app, ["creative", "fit-selector", "--refs", str(refs), "--backend", "template",
                                 "--offset", "46", "--limit", "8", "--out", str(weights)])
    assert fitted.exit_code == 0, fitted.output
    assert "fitted on 8 pairs" in fitted.output and json.loads(weights.read_text())["provenance"]["offset"] == 46
    used = runner.invoke(app, ["creative", "eval", "--refs", str(refs), "--backend", "template", "--limit", "2",
                               "--selector", str(weights)])
    assert used.exit_code == 0 and f"selector={weights}" in used.output, used.output
    for args in (["--offset", "0"], ["--selector", str(tmp_path / "none.json")]):
        command = "fit-selector" if args[0] == "--offset" else "eval"
        result = runner.invoke(app, ["creative", command, "--refs", str(refs), "--backend", "template", *args])
        assert isinstance(result.exception, UserError), (args, result.output)
