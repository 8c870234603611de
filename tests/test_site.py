"""``interpscore site``: the data the page embeds (pure, fast) and the page itself, driven
in headless Chromium from file:// (no network), on the committed reference report."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest

from interpscore.cli import main
from interpscore.formula import BUILTIN, Formula, known_components, score
from interpscore.results.public import public_repo
from interpscore.results.records import is_model_control
from interpscore.site.command import SITE_FILES, report_labels
from interpscore.site.data import SiteError, build_site_data, embed_json
from interpscore.site.render import index_html

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "reports" / "interpscore.json"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(REPORT.read_text())


@pytest.fixture(scope="module")
def known() -> dict[str, str]:
    return known_components()


def _renamed(report: dict, suffix: str) -> dict:
    other = copy.deepcopy(report)
    for sae in other["saes"]:
        sae["id"] += suffix
        if sae.get("control_of"):
            sae["control_of"] += suffix
    return other


# ------------------------------------------------------------------ the data (pure)


def _failing(report: dict) -> dict:
    """The reference with a failed SAE (no score), a broken control comparison and a paired
    interval on SAE − control InterpScore for topk-k80's random-init control."""
    out = copy.deepcopy(report)
    broken = copy.deepcopy(next(s for s in out["saes"] if s["id"] == "jumprelu"))
    broken.update(id="broken-sae", status="error", errors=["boom"], interp_score=None)
    broken["interp_score_ci95"] = None
    out["saes"].append(broken)
    top = next(s for s in out["saes"] if s["id"] == "topk-k80")
    top["metrics"]["alive"]["controls"]["control-rerand-excl-emb"] = {
        "kind": "model",
        "error": "the control ran out of memory",
        "value": 0.99,
        "difference_ci95": [-0.2, -0.1],
    }
    top["controls"]["topk-k80#random-init"]["difference_ci95"] = [0.1, 0.2]
    return out


def test_the_data_holds_no_rank_and_flags_model_controls(report, known):
    data = build_site_data([("r.json", report)], known)
    saes = data["saes"]
    assert [s["id"] for s in saes] == [s["id"] for s in report["saes"]]  # the page ranks
    assert all("rank" not in s for s in saes)
    controls = [s for s in saes if s["is_control"]]
    assert {s["id"] for s in controls} == {"control-rerand-incl-emb", "control-rerand-excl-emb"}
    assert all(s["control_of"] == "topk-k80" for s in controls)
    # a model control is an entry with control_of, whatever its id
    renamed = copy.deepcopy(report)
    renamed["saes"][0]["id"] = "control-not-really"
    data = build_site_data([("r.json", renamed)], known)
    assert not data["saes"][0]["is_control"]
    assert data["builtin_versions"] == [f["version"] for f in data["formulas"]]
    assert data["builtin_versions"][0] == "0.0.1"
    assert "0.0.2-controls" in data["builtin_versions"]


def test_a_broken_control_is_kept_and_is_no_evidence_and_a_failed_sae_keeps_no_score(report, known):
    formula = Formula("9.9-t", {"loss_recovered": 0.5, "alive": 0.5}, l0_target=80.0)
    for chosen in (None, formula):
        data = build_site_data([("r.json", _failing(report))], known, chosen)
        top = next(s for s in data["saes"] if s["id"] == "topk-k80")
        (broken,) = [
            c for c in top["metrics"]["alive"]["controls"] if c["name"] == "control-rerand-excl-emb"
        ]
        assert broken["error"] == "the control ran out of memory"
        assert broken["side"] is None  # its interval is no evidence either way
        failed = next(s for s in data["saes"] if s["id"] == "broken-sae")
        assert failed["interp_score"] is None  # not re-scored into a number by --formula
        assert failed["components"]  # its values are still shown
    data = build_site_data([("r.json", _failing(report))], known)
    top = next(s for s in data["saes"] if s["id"] == "topk-k80")
    assert top["controls"]["topk-k80#random-init"]["side"] == "above"
    assert top["controls"]["control-rerand-excl-emb"]["side"] is None


def test_embedded_components_give_the_reports_scores_with_its_formula(report, known):
    data = build_site_data([("r.json", report)], known)
    formula = BUILTIN[report["formula"]["version"]]
    by_id = {s["id"]: s for s in report["saes"]}
    for sae in data["saes"]:
        result = score(sae["components"], formula)
        assert result.value == by_id[sae["id"]]["interp_score"]
        assert result.missing == by_id[sae["id"]]["missing"]
        assert sae["interp_score_ci95"] == by_id[sae["id"]]["interp_score_ci95"]
    top = next(s for s in data["saes"] if s["id"] == "topk-k80")
    # components the report's formula does not weight come from the metrics, as the CLI reads
    assert (
        top["components"]["tpp_chance_anchored"]
        == (by_id["topk-k80"]["metrics"]["tpp_chance_anchored"]["value"])
    )
    control = top["metrics"]["loss_recovered"]["controls"]
    assert {c["kind"] for c in control} == {"random-init", "model"}
    assert all("distinguishes" not in c for c in control)  # site.js reads the side
    # the side says which way: alive is distinguished from the model controls, but below them
    sides = {c["name"]: c["side"] for c in top["metrics"]["alive"]["controls"]}
    assert sides["topk-k80#random-init"] == "above"
    assert sides["control-rerand-excl-emb"] == "below"


def test_only_small_details_and_the_autointerp_showcase_are_embedded(report, known):
    data = build_site_data([("r.json", report)], known)
    top = next(s for s in data["saes"] if s["id"] == "topk-k80")
    absorption = top["metrics"]["absorption"]
    assert "per_letter" in absorption["details_omitted"]
    assert "per_letter" not in absorption["details"]
    (auto,) = [a for a in top["autointerp"] if a["metric"] == "autointerp_embedding"]
    assert auto["showcase"]
    assert auto["showcase"][0]["explanation"]
    assert len(embed_json(data)) < 400_000


def test_embedded_json_cannot_end_its_script_element():
    data = {"id": "</script>" + HOSTILE + "<!--", "x": "\u2028&"}
    text = embed_json(data)
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text) == data
    page = index_html({"schema": "x", "saes": [{"id": "</script><script>alert(1)</script>"}]})
    assert page.count("</script>") == 2  # the data element's and site.js's


def test_several_reports_are_concatenated_and_ids_must_differ(report, known):
    other = _renamed(report, "-b")
    data = build_site_data([("a.json", report), ("b.json", other)], known)
    assert len(data["saes"]) == 14
    assert {s["source"] for s in data["saes"]} == {0, 1}
    with pytest.raises(SiteError, match=r"is in both a\.json and b\.json"):
        build_site_data([("a.json", report), ("b.json", report)], known)


def test_other_formula_versions_need_formula_and_are_then_rescored(report, known):
    other = _renamed(report, "-b")
    other["formula"] = {**other["formula"], "version": "9.9"}
    with pytest.raises(SiteError, match="different formula versions"):
        build_site_data([("a.json", report), ("b.json", other)], known)
    formula = Formula(
        "9.9-test",
        {"loss_recovered": 0.5, "tpp_chance_anchored": 0.25, "kl_recovered": 0.25},
        l0_target=80.0,
    )
    data = build_site_data([("a.json", report), ("b.json", other)], known, formula)
    assert data["formula"]["version"] == "9.9-test"
    assert data["rescored"]
    for sae in data["saes"]:
        expect = score(sae["components"], formula)
        assert sae["interp_score"] == expect.value
        assert sae["missing"] == expect.missing
        assert "kl_recovered" in sae["missing"]  # not measured in the reference: missing
        assert sae["interp_score_ci95"] is None  # no replicates to redo the interval
    shifted = Formula("9.9-t", {"l0_score": 1.0}, l0_target=40.0)
    with pytest.raises(SiteError, match="target L0"):
        build_site_data([("a.json", report)], known, shifted)


def test_no_machine_path_is_embedded(report, known):
    assert public_repo("/work/main/saes/topk") == "topk"
    assert public_repo("C:\\saes\\topk") == "topk"
    assert public_repo("zoo:topk-k80") == "zoo:topk-k80"
    local = copy.deepcopy(report)
    local["saes"][0]["sae_repo"] = str(REPO / "fixtures" / "saes" / "x")
    text = embed_json(build_site_data([("r.json", local)], known))
    assert str(REPO) not in text
    assert "/work/" not in text


def test_reports_are_labelled_by_the_fewest_trailing_path_parts(tmp_path):
    a, b = tmp_path / "a" / "interpscore.json", tmp_path / "b" / "interpscore.json"
    assert report_labels([a, b]) == ["a/interpscore.json", "b/interpscore.json"]
    assert report_labels([a]) == ["interpscore.json"]
    assert report_labels([a, tmp_path / "b" / "other.json"]) == ["interpscore.json", "other.json"]
    deep = tmp_path / "x" / "a" / "interpscore.json"
    assert report_labels([a, deep]) == [
        f"{tmp_path.name}/a/interpscore.json",
        "x/a/interpscore.json",
    ]
    for label in report_labels([a, b, deep]):
        assert not Path(label).is_absolute()
        assert str(tmp_path) not in label


def test_command_labels_two_reports_of_the_same_name_apart(tmp_path, report):
    for folder, suffix in (("a", ""), ("b", "-b")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "interpscore.json").write_text(json.dumps(_renamed(report, suffix)))
    args = [str(tmp_path / f / "interpscore.json") for f in "ab"]
    assert main(["site", *args, "-o", str(tmp_path / "site")]) == 0
    html = (tmp_path / "site" / "index.html").read_text()
    start = html.index('id="site-data">') + len('id="site-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    assert [r["name"] for r in data["reports"]] == ["a/interpscore.json", "b/interpscore.json"]
    assert {row["report"] for row in data["evidence"]} == {r["name"] for r in data["reports"]}
    assert str(tmp_path) not in html


def test_no_report_is_refused(known):
    with pytest.raises(SiteError, match="No report"):
        build_site_data([], known)


# ------------------------------------------------------------------ the command


def test_command_refuses_bad_output_and_input_with_one_line(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["site", str(REPORT), "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interpscore: error:")
    assert "is a file" in err
    assert "\n" not in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["site", str(bad), "-o", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "s2" / "index.html").mkdir(parents=True)
    assert main(["site", str(REPORT), "-o", str(tmp_path / "s2")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["site", str(REPORT), "-o", str(out)]) == 0
    return out


def test_command_writes_a_small_offline_site(site):
    assert sorted(p.name for p in site.iterdir()) == ["index.html", "site.css", "site.js"]
    html = (site / "index.html").read_text()
    assert len(html) < 400_000
    for text in (html, (site / "site.js").read_text(), (site / "site.css").read_text()):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
        assert str(REPO) not in text
    start = html.index('id="site-data">') + len('id="site-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    assert [row["component"] for row in data["evidence"]][:1] == ["loss_recovered"]


def test_the_committed_site_is_a_fresh_render_of_the_committed_report(site):
    """reports/site/ is what `interpscore site reports/interpscore.json` writes, byte for
    byte (the page holds no current time: re-rendering the same report gives the same site)."""
    committed = REPO / "reports" / "site"
    for name in SITE_FILES:
        assert (committed / name).read_bytes() == (site / name).read_bytes(), (
            f"reports/site/{name} is stale: interpscore site reports/interpscore.json "
            "-o reports/site"
        )


# ------------------------------------------------------------------ the page in Chromium


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("INTERPSCORE_REQUIRE_BROWSER"):
            pytest.fail("INTERPSCORE_REQUIRE_BROWSER is set but there is no chromium binary")
        pytest.skip("no chromium binary: apt-get install chromium")
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("INTERPSCORE_REQUIRE_BROWSER"):
            pytest.fail("INTERPSCORE_REQUIRE_BROWSER is set but playwright is not installed")
        pytest.skip("pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


class Page:
    """A page of the site with every console message, error and request recorded."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(
            accept_downloads=True, viewport={"width": 1400, "height": 900}
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on(
            "console", lambda m: m.type in ("error", "warning") and self.problems.append(m.text)
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("requestfailed", lambda r: self.problems.append("failed: " + r.url))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)

    def rows(self) -> list[tuple[str, float, bool]]:
        return self.page.eval_on_selector_all(
            "#leaderboard tbody tr",
            "rs => rs.map(r => { const s = r.querySelector('td.score');"
            " return [r.dataset.id, s.dataset.score, s.dataset.partial === 'true']; })",
        )

    def ids(self) -> list[str]:
        return [row[0] for row in self.rows()]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, site):
    p = Page(browser, (site / "index.html").as_uri())
    yield p
    p.close()


def test_page_loads_from_file_without_errors_or_network(page):
    page.page.wait_for_selector("#leaderboard tbody tr")
    assert page.problems == []
    assert page.requests
    assert all(url.startswith("file://") for url in page.requests)
    assert len(page.ids()) == 7
    header = page.page.text_content("#leaderboard thead")
    for name in ("loss_recovered", "alive", "l0_score", "sparse_probing", "tpp", "InterpScore"):
        assert name in header
    first = page.page.text_content('#leaderboard tr[data-id="topk-k80"]')
    assert "[0.841, 0.865]" in first
    assert "random-init" in first
    assert page.page.locator("#frontier-plot circle").count() == 7
    assert page.page.locator("#frontier-plot polyline.frontier-line").count() == 1
    titles = page.page.eval_on_selector_all(
        "#frontier-plot circle title", "t => t.map(x => x.textContent)"
    )
    assert any(t.startswith("topk-k32:") for t in titles)
    page.page.select_option("#metric-select", "tpp")
    assert page.page.locator("#metric-plot circle").count() == 5  # model controls ran core only
    assert page.problems == []


def test_headers_sort_and_filters_hide_rows(page, report):
    by_id = {s["id"]: s for s in report["saes"]}
    page.page.click('th[data-key="id"]')
    assert page.ids() == sorted(by_id)
    page.page.click('th[data-key="id"]')
    assert page.ids() == sorted(by_id, reverse=True)
    page.page.click('th[data-key="c:alive"]')
    alive = [by_id[i]["components"]["alive"] for i in page.ids()]
    assert alive == sorted(alive, reverse=True)
    page.page.click('th[data-key="c:alive"]')
    assert [by_id[i]["components"]["alive"] for i in page.ids()] == sorted(alive)
    page.page.select_option("#filter-architecture", "topk")
    assert set(page.ids()) == {i for i, s in by_id.items() if s["architecture"] == "topk"}
    page.page.select_option("#filter-architecture", "")
    page.page.select_option("#filter-model", "smollm2-135m")
    assert set(page.ids()) == {i for i, s in by_id.items() if s["model"] == "smollm2-135m"}
    page.page.select_option("#filter-model", "")
    page.page.fill("#filter-q", "k80")
    assert set(page.ids()) == {"topk-k80", "batchtopk-k80"}
    page.page.fill("#filter-q", "")
    page.page.uncheck("#show-controls")
    assert len(page.ids()) == 5
    assert page.problems == []


def _cli_scores(capsys, formula: Path) -> list[dict]:
    capsys.readouterr()
    assert main(["score", str(REPORT), "--formula", str(formula), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_edited_weights_rerank_exactly_as_the_cli_scores_the_downloaded_file(
    page, tmp_path, capsys, report
):
    before = page.ids()
    page.page.fill("#w-loss_recovered", "0")  # sum 0.7: invalid until tpp takes the 0.3
    assert page.page.is_disabled("#download-formula")
    page.page.fill("#w-tpp", "0.45")
    assert "Valid formula" in page.page.text_content("#formula-status")
    page.page.fill("#formula-version", "0.0.1-tpp")
    with page.page.expect_download() as download:
        page.page.click("#download-formula")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".toml"
    assert 'version = "0.0.1-tpp"' in path.read_text()
    cli = _cli_scores(capsys, path)
    page.page.click('th[data-key="score"]')  # InterpScore, highest first, controls included
    rows = page.rows()
    expected = sorted(cli, key=lambda r: -r["interp_score"])
    assert [r[0] for r in rows] == [r["name"] for r in expected]
    for (sae_id, value, partial), want in zip(rows, expected, strict=True):
        assert abs(float(value) - want["interp_score"]) <= 1e-12, sae_id
        assert partial == want["partial"]
    assert page.ids() != before  # the edit did re-rank: batchtopk-k80 passes relu-l1
    assert page.ids()[:3] == ["topk-k80", "batchtopk-k80", "relu-l1"]
    page.page.click('th[data-key="rank"]')
    ranked = [
        r
        for r in expected
        if not is_model_control(next(s for s in report["saes"] if s["id"] == r["name"]))
    ]
    assert page.ids()[: len(ranked)] == [r["name"] for r in ranked]
    # the same file is a formula the other commands accept
    assert main(["formula", "--formula", str(path)]) == 0
    assert page.problems == []


def test_an_invalid_formula_disables_the_download_and_says_why(page):
    page.page.fill("#w-alive", "0.5")
    assert page.page.is_disabled("#download-formula")
    status = page.page.text_content("#formula-status")
    assert "Invalid" in status
    assert "sum to 1.35" in status
    assert "invalid" in (page.page.get_attribute("#weight-sum", "class") or "")
    page.page.fill("#w-alive", "0.15")
    assert not page.page.is_disabled("#download-formula")
    page.page.fill("#formula-version", "0.0.1")
    assert page.page.is_disabled("#download-formula")
    assert "built in" in page.page.text_content("#formula-status")
    page.page.fill("#formula-version", "x")
    page.page.fill("#w-tpp", "-0.15")
    assert page.page.is_disabled("#download-formula")
    assert "weight of tpp is negative" in page.page.text_content("#formula-status")
    page.page.fill("#w-tpp", "1.5")
    assert "weight of tpp is more than 1" in page.page.text_content("#formula-status")
    page.page.fill("#w-tpp", "0.15")
    assert not page.page.is_disabled("#download-formula")


def test_the_page_of_an_sae_shows_components_and_controls(page, tmp_path):
    page.page.click('#leaderboard tr[data-id="topk-k80"] a.sae-link')
    page.page.wait_for_selector("#sae-view:not([hidden])")
    assert page.page.is_hidden("#board")
    assert page.page.text_content("#sae-title").startswith("topk-k80")
    components = page.page.eval_on_selector_all(
        "#breakdown tbody tr", "rs => rs.map(r => r.dataset.component)"
    )
    assert components[:5] == ["loss_recovered", "alive", "l0_score", "sparse_probing", "tpp"]
    assert "0.297" in page.page.text_content('#breakdown tr[data-component="loss_recovered"]')
    controls = page.page.text_content("#score-controls")
    assert "topk-k80#random-init" in controls
    assert "control-rerand-excl-emb" in controls
    metric = page.page.text_content('#metrics tr[data-metric="loss_recovered"]')
    assert "random-init" in metric
    assert "▲ above the control" in metric
    assert "[0.988, 0.992]" in metric
    assert page.page.locator(".showcase li").count() > 0  # autointerp explanations
    shot = tmp_path / "sae.png"
    page.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    page.page.click("#back")  # routing runs on hashchange, after the click returns
    page.page.wait_for_selector("#board", state="visible", timeout=5_000)
    assert page.page.is_hidden("#sae-view")
    assert page.problems == []


def test_a_hostile_sae_id_is_shown_as_text(browser, report, tmp_path):
    hostile = copy.deepcopy(report)
    for sae in hostile["saes"]:
        if sae["id"] == "topk-k80":
            sae["id"] = HOSTILE
        if sae.get("control_of") == "topk-k80":
            sae["control_of"] = HOSTILE
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(hostile))
    assert main(["site", str(source), "-o", str(tmp_path / "site")]) == 0
    p = Page(browser, (tmp_path / "site" / "index.html").as_uri())
    try:
        assert HOSTILE in p.ids()
        assert p.page.locator("img").count() == 0
        p.page.click(f'#leaderboard tr[data-id="{HOSTILE}"] a.sae-link')
        assert p.page.text_content("#sae-title").startswith(HOSTILE)
        assert p.page.locator("img").count() == 0
        assert p.dialogs == []
        assert p.problems == []
    finally:
        p.close()


def test_a_screenshot_of_the_leaderboard(page, tmp_path):
    shot = tmp_path / "leaderboard.png"
    page.page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


def test_a_published_formula_can_be_loaded_and_rescores_the_table(page, capsys):
    page.page.click('button.load-formula[data-version="0.0.2-controls"]')
    assert page.page.input_value("#w-tpp") == "0.375"
    assert page.page.input_value("#w-loss_recovered") == "0"
    assert page.page.is_disabled("#download-formula")  # its version is shipped: rename first
    assert "no download" in page.page.text_content("#formula-status")
    page.page.click('th[data-key="score"]')
    capsys.readouterr()
    assert main(["score", str(REPORT), "--formula", "0.0.2-controls", "--json"]) == 0
    cli = sorted(json.loads(capsys.readouterr().out), key=lambda r: -r["interp_score"])
    rows = page.rows()
    assert [r[0] for r in rows] == [r["name"] for r in cli]
    for (sae_id, value, _), want in zip(rows, cli, strict=True):
        assert abs(float(value) - want["interp_score"]) <= 1e-12, sae_id
    assert page.problems == []


def test_score_controls_give_a_verdict_only_from_a_paired_interval(page):
    cell = page.page.locator('#leaderboard tr[data-id="topk-k80"] td').nth(
        page.page.eval_on_selector_all(
            "#leaderboard thead th", "hs => hs.findIndex(h => h.dataset.key === 'controls')"
        )
    )
    text = cell.text_content()
    # the reference has no paired interval on SAE − control InterpScore: no verdict at all
    assert "below" not in text
    for mark in "▲▼≈":
        assert mark not in text
    assert "random-init 0.714, Δ +0.139" in text  # both exact: the difference
    assert "model ≥0.600" in text  # a partial control: a lower bound, no difference
    assert "≥0.600, Δ" not in text
    assert page.problems == []


def test_a_failed_sae_is_not_ranked_and_a_broken_control_shows_its_error(browser, report, tmp_path):
    source = tmp_path / "failing.json"
    source.write_text(json.dumps(_failing(report)))
    assert main(["site", str(source), "-o", str(tmp_path / "site")]) == 0
    p = Page(browser, (tmp_path / "site" / "index.html").as_uri())
    try:
        rank = p.page.text_content('#leaderboard tr[data-id="broken-sae"] td.rank')
        assert rank == "—"
        assert p.page.text_content('#leaderboard tr[data-id="broken-sae"] td.score').startswith("—")
        ranks = p.page.eval_on_selector_all(
            "#leaderboard tbody td.rank", "ts => ts.map(t => t.textContent)"
        )
        assert sorted(r for r in ranks if r.isdigit()) == ["1", "2", "3", "4", "5"]
        assert p.ids()[-1] == "broken-sae"  # by rank: after the ranked SAEs and controls
        p.page.fill("#w-loss_recovered", "0")
        p.page.fill("#w-tpp", "0.45")  # an edited formula does not score it either
        assert p.page.text_content('#leaderboard tr[data-id="broken-sae"] td.rank') == "—"
        p.page.click("button#reset-formula")
        row = '#leaderboard tr[data-id="topk-k80"]'
        error = p.page.locator(f"{row} .control-error")
        assert error.count() == 1
        assert error.text_content() == "rerand-excl-emb error"
        assert "the control ran out of memory" in error.get_attribute("title")
        assert "▼" not in error.text_content()
        assert "random-init ≥0.714" not in p.page.text_content(row)
        assert "random-init 0.714, Δ +0.139 ▲" in p.page.text_content(row)  # paired interval
        p.page.click(f"{row} a.sae-link")
        assert "error: the control ran out of memory" in p.page.text_content(
            '#metrics tr[data-metric="alive"]'
        )
        assert "▲ above the control" in p.page.text_content(
            '#score-controls tr[data-control="topk-k80#random-init"]'
        )
        p.page.goto((tmp_path / "site" / "index.html").as_uri() + "#sae=broken-sae")
        p.page.wait_for_function(  # the view was open already: wait for the new SAE's title
            "document.getElementById('sae-title').textContent.startsWith('broken-sae')",
            timeout=5_000,
        )
        assert "not ranked (no InterpScore)" in p.page.text_content("#sae-score")
        assert p.problems == []
    finally:
        p.close()
