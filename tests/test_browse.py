"""`auxreid browse`: the static site of a run's rounds, checked against the run's artifacts.

A copy of the shared tiny run (`built_run`, round 1 evaluated) gets a round 2 (extract, cluster), and the site is
built once into its default folder RUN/browse: every link and image of every page resolves inside the site, the
round pages' numbers are the artifacts', cluster pages list their members and where they came from, tracklet
pages hold the brute-force nearest neighbours, the evaluation page is sorted by AP. Then: a rebuild into the
same folder (thumbnails reused), a foreign folder refused, the one-line errors, and escaping on a hand-made run.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from stages.artifacts.readers import read_clusters, read_eval, read_features
from stages.browse.collect import RoundView, RunView, TrainTracklets
from stages.browse.render import render_site
from stages.browse.stats import cluster_stats, l2_normalise, nearest_neighbours, transitions
from stages.browse.thumbs import THUMB_HEIGHT, THUMB_WIDTH, Thumbs
from stages.rundir import RunDir
from stages.views.ranklist import verdicts
from test_cli_train_round import built_run, invoke, refused, run_copy, snapshot


class Page(HTMLParser):
    """The links, images, ids and elements (tag, attributes) of one HTML page."""

    def __init__(self, path: Path) -> None:
        super().__init__(convert_charrefs=True)
        self.path = path
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag in ("a", "link") and "href" in attrs:
            self.links.append(attrs["href"])
        if tag in ("img", "script") and "src" in attrs:
            (self.images if tag == "img" else self.links).append(attrs["src"])

    def handle_data(self, data):
        self.text.append(data)

    def having(self, attribute: str, tag: str | None = None) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.elements if attribute in attrs and (tag is None or t == tag)]

    def by_id(self, element_id: str) -> dict[str, str]:
        return next(attrs for _, attrs in self.elements if attrs.get("id") == element_id)


@pytest.fixture(scope="module")
def run2(module_tmp, tiny_synth):
    """A copy of the shared run with a round 2 (extract, cluster) beside its evaluated round 1."""
    run = run_copy(built_run(module_tmp.factory, tiny_synth), module_tmp.mktemp("browse_run"))
    for step in (("extract", run, "--round", "2"), ("cluster", run, "--round", "2")):
        result = invoke(*step)
        assert result.exit_code == 0, (step, result.output)
    return run


@pytest.fixture(scope="module")
def site(run2):
    result = invoke("browse", run2)
    assert result.exit_code == 0, result.output
    assert re.search(rf"wrote {re.escape(str(run2 / 'browse' / 'index.html'))} \(2 rounds, \d+ files, [\d.]+ MB \([\d.]+ MB on disk\), "
                     r"\d+ thumbnails of which \d+ new\)", result.output), result.output
    return run2 / "browse"


@pytest.fixture(scope="module")
def pages(site):
    return {str(p.relative_to(site)): Page(p) for p in sorted(site.rglob("*.html"))}


def test_every_link_and_image_of_every_page_resolves_inside_the_site(site, pages):
    assert {"index.html", "round_001/index.html", "round_002/index.html", "round_001/eval.html",
            "tracklets/t0000.html"} <= set(pages)
    assert not (site / "round_002" / "eval.html").exists()  # round 2 was not evaluated
    checked = 0
    for name, page in pages.items():
        for link in page.links + page.images:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, (name, link)  # no network, no CDN
            target = (page.path.parent / unquote(parts.path)).resolve() if parts.path else page.path
            assert target.is_file() and site.resolve() in target.parents, (name, link)
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in pages[str(target.relative_to(site.resolve()))].ids, (name, link)
            checked += 1
        for src in page.images:
            assert src.endswith(".jpg") and "/thumbs/" in f"/{src}", (name, src)
        for attrs in page.having("src", "img"):
            assert attrs.get("loading") == "lazy", (name, attrs)
    assert checked > 500
    thumbs = sorted((site / "thumbs").rglob("*.jpg"))
    used = {(pages[n].path.parent / src).resolve() for n in pages for src in pages[n].images}
    assert {t.resolve() for t in thumbs} == used  # one thumbnail per frame shown, none unused
    with Image.open(thumbs[0]) as image:
        assert image.format == "JPEG" and image.size == (THUMB_WIDTH, THUMB_HEIGHT)
    manifest = json.loads((site / "browse.json").read_text())
    assert (manifest["tool"], manifest["rounds"], manifest["evaluated"]) == ("auxreid browse", [1, 2], [1])
    assert manifest["thumbnails"] == len(thumbs)
    assert not list(site.parent.glob(".browse*"))  # no temporary left beside it


@pytest.mark.parametrize("r", [1, 2])
def test_round_page_numbers_are_the_artifacts(run2, pages, r):
    clusters = read_clusters(run2 / f"round_{r:03d}" / "clusters.h5")
    labels, sizes = clusters["labels"], clusters["sizes"]
    count = int(clusters.attrs["num_clusters"])
    train = read_features(run2 / f"round_{r:03d}" / "features.h5")["train"]
    page = pages[f"round_{r:03d}/index.html"]
    summary = page.by_id("summary")
    assert (int(summary["data-clusters"]), int(summary["data-noise"]), int(summary["data-tracklets"])) == (
        count, int((labels < 0).sum()), len(labels))
    cards = sorted(page.having("data-size", "div"), key=lambda a: int(a["data-id"]))
    assert [int(a["data-id"]) for a in cards] == list(range(count))
    assert [int(a["data-size"]) for a in cards] == sizes.tolist()
    for key in ("data-cameras", "data-purity", "data-majority", "data-violations", "data-spread"):
        assert all(key in a for a in cards), key
    for c, card in enumerate(cards):
        members = labels == c
        assert int(card["data-cameras"]) == len(set(train["camera"][members].tolist()))
        ids = train["person_id"][members]
        top = np.bincount(ids[ids >= 0]).max()
        assert float(card["data-purity"]) == pytest.approx(top / (ids >= 0).sum(), abs=1e-5)
        assert int(card["data-majority"]) == int(np.argmax(np.bincount(ids[ids >= 0])))
    assert sum(int(a["data-violations"]) for a in cards) == int(clusters.attrs["cannot_link_violations"])
    noise = [a for a in page.having("data-index", "div")]
    assert sorted(int(a["data-index"]) for a in noise) == np.flatnonzero(labels < 0).tolist()
    assert page.having("data-for", "form") and "function" in "".join(page.text)  # the inline sorter


def test_cluster_pages_list_their_members_and_where_they_came_from(run2, pages):
    now = read_clusters(run2 / "round_002" / "clusters.h5")["labels"]
    before = read_clusters(run2 / "round_001" / "clusters.h5")["labels"]
    for c in range(int(now.max()) + 1):
        page = pages[f"round_002/clusters/c{c:05d}.html"]
        rows = sorted(int(i[1:]) for i in page.ids if re.fullmatch(r"t\d+", i))
        assert rows == np.flatnonzero(now == c).tolist()
        assert "<svg" in page.path.read_text()  # the synth dataset has times: a time line
        html = page.path.read_text()
        came = re.search(r"Came from round 1</h2>.*?</table>", html, re.S).group(0)
        links = re.findall(r'<a href="\.\./\.\./round_001/(?:clusters/c(\d+)\.html|index\.html#noise)">', came)
        counts = [int(n) for n in re.findall(r'<td class="n">(\d+)</td>', came)]
        expected = {int(label): int((before[now == c] == label).sum()) for label in np.unique(before[now == c])}
        assert {(int(link) if link else -1): n for link, n in zip(links, counts)} == expected
    if int(before.max()) >= 0:
        went = pages["round_001/clusters/c00000.html"].path.read_text()
        assert "Went to round 2" in went


def test_tracklet_pages_hold_each_rounds_cluster_and_the_nearest_neighbours(run2, pages):
    page = pages["tracklets/t0000.html"]
    html = page.path.read_text()
    features = read_features(run2 / "round_002" / "features.h5")["train"]["features"]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = np.linalg.norm(unit[:, None] - unit[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    labels = read_clusters(run2 / "round_002" / "clusters.h5")["labels"]
    for row in (0, 5, len(features) - 1):
        section = re.search(rf'<section class="tracklet" id="t{row}">.*?</section>', html, re.S)
        if section is None:  # a later chunk page
            continue
        text = section.group(0)
        round2 = re.search(r'round_002/index\.html">round 2</a></td><td>(.*?)</tr>', text, re.S).group(1)
        where = "noise" if labels[row] < 0 else f"cluster {labels[row]}"
        assert f">{where}</a>" in round2
        shown = [int(n) for n in re.findall(r'href="\.\./tracklets/t\d+\.html#t(\d+)"', round2)]
        assert shown == np.argsort(distance[row], kind="stable")[:5].tolist()
    index, dist = nearest_neighbours(unit.astype(np.float32), block=7)  # blocks give the same answer
    assert np.allclose(dist, np.sort(distance, axis=1)[:, :5], atol=1e-4)


def test_the_evaluation_page_lists_queries_worst_first_with_marked_top10(run2, pages):
    evaluation = read_eval(run2 / "round_001" / "eval.h5")
    page = pages["round_001/eval.html"]
    queries = page.having("data-ap", "div")
    assert len(queries) == len(evaluation["ap"])
    aps = [float(q["data-ap"]) for q in queries if q["data-ap"]]
    assert aps == sorted(aps)
    first = int(queries[0]["data-query"])
    ranked = evaluation["topk_index"][first, :10]
    expected = verdicts(int(evaluation["query/person_id"][first]), int(evaluation["query/camera"][first]),
                        evaluation["gallery/person_id"][ranked], evaluation["gallery/camera"][ranked])
    html = page.path.read_text()
    block = re.search(rf'<div class="query item" id="q{first}".*?</div></div>', html, re.S).group(0)
    assert re.findall(r'<figure class="(right|wrong|ignored)">', block) == expected and len(expected) == 10


def test_a_second_build_replaces_the_site_and_reuses_its_thumbnails(run2, site):
    before = {p.name for p in (site / "thumbs").rglob("*.jpg")}
    result = invoke("browse", run2, "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert "(1 round," in result.output and "of which 0 new" in result.output
    assert json.loads((site / "browse.json").read_text())["rounds"] == [1]
    assert not (site / "round_002").exists() and {p.name for p in (site / "thumbs").rglob("*.jpg")} <= before
    result = invoke("browse", run2)  # back to both rounds, for the other tests' pages (read before, already)
    assert result.exit_code == 0, result.output


def test_a_folder_not_written_by_browse_is_refused(run2, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    refused(invoke("browse", run2, "--out", foreign), str(foreign), "is not a site written by `auxreid browse`")
    assert snapshot(tmp_path) == before
    a_file = tmp_path / "file.html"
    a_file.write_text("x")
    refused(invoke("browse", run2, "--out", a_file), "is not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("browse", run2, "--out", empty, "--rounds", "2")
    assert result.exit_code == 0, result.output
    assert (empty / "index.html").is_file() and not (empty / "round_001").exists()


def test_one_line_errors(run2, tmp_path, monkeypatch):
    refused(invoke("browse", tmp_path / "nothing"), "does not exist")
    refused(invoke("browse", run2, "--rounds", "7"), "round 7", "neither clusters.h5 nor eval.h5")
    refused(invoke("browse", run2, "--rounds", "x"), "--rounds takes round numbers")
    bare = tmp_path / "bare"
    (bare / "round_000").mkdir(parents=True)
    (bare / "config.yaml").write_text((run2 / "config.yaml").read_text())
    refused(invoke("browse", bare), "has no round with clusters.h5")
    monkeypatch.setattr("stages.browse.collect._frame_root", lambda candidates, first: str(tmp_path / "gone"))
    refused(invoke("browse", run2, "--out", tmp_path / "site"), f"frame {tmp_path / 'gone'}", "is missing",
            "more frames", alone=False)
    assert not (tmp_path / "site").exists() and not list(tmp_path.glob(".site*"))


def _hand_made_view(tmp_path: Path) -> RunView:
    """A 6-tracklet, 1-round view with hostile names, without artifacts or frames."""
    names = np.array(['a<b>&"c', "<script>x</script>", "plain", "o'k", "t&amp;", "z"])
    rng = np.random.default_rng(0)
    unit = l2_normalise(rng.normal(size=(6, 4)))
    labels = np.array([0, 0, 1, 1, -1, 0])
    camera = np.array([0, 0, 1, 2, 1, 1])
    ids = np.array([3, 4, 5, 5, -1, 3])
    pairs = np.array([[0, 1]])
    stats = cluster_stats(labels, count=2, camera=camera, person_id=ids, normalised=unit, cannot_link=pairs)
    knn = nearest_neighbours(unit)
    train = TrainTracklets(names=names, camera=camera, person_id=ids, start=np.arange(6.0), end=np.arange(6.0) + 2,
                           frames=[(str(tmp_path / f"{i}.jpg"),) for i in range(6)], num_frames=np.ones(6, int),
                           root=str(tmp_path))
    rv = RoundView(round=1, labels=labels, count=2, stats=stats, knn_index=knn[0], knn_distance=knn[1],
                   attrs={"eps": 0.5, "algorithm": "<dbscan>"}, quality={}, cannot_link=pairs)
    return RunView(run=RunDir(tmp_path / "r<un"), dataset="d", fingerprint="f" * 16, train=train, rounds={1: rv})


def test_text_is_escaped_and_numbers_are_vectorised_right(tmp_path):
    view = _hand_made_view(tmp_path)
    written: dict[str, str] = {}
    render_site(view, Thumbs(), written.__setitem__)
    text = "".join(written.values())
    assert "<script>x</script>" not in text and "a<b>" not in text and "<dbscan>" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "a&lt;b&gt;&amp;&quot;c" in text and "t&amp;amp;" in text
    assert "&lt;dbscan&gt;" in text and "o&#x27;k" in text
    stats = view.rounds[1].stats
    assert stats.sizes.tolist() == [3, 2] and stats.cameras.tolist() == [2, 2]
    assert stats.majority.tolist() == [3, 5] and stats.purity.tolist() == pytest.approx([2 / 3, 1.0])
    assert stats.violations.tolist() == [1, 0] and stats.violated.tolist() == [True, True, False, False, False, False]
    assert np.isnan(stats.member_distance[4]) and np.all(np.isfinite(stats.spread))
    assert 'class="violated"' in written["round_001/clusters/c00000.html"]
    clusters, others, counts = transitions(np.array([0, 0, 1, -1]), np.array([2, -1, 2, 0]))
    assert (clusters.tolist(), others.tolist(), counts.tolist()) == ([0, 0, 1], [-1, 2, 2], [1, 1, 1])


def test_a_second_browse_into_the_same_folder_is_refused_and_a_killed_builds_leftovers_go(run2, tmp_path):
    import fcntl
    import os

    out = tmp_path / "site"
    with open(tmp_path / ".site.lock", "w") as held:  # as a running `auxreid browse` holds it
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused(invoke("browse", run2, "--out", out, "--rounds", "1"), f"cannot write {out}", "(PID 4242)")
        assert not out.exists()
    os.remove(tmp_path / ".site.lock")
    (tmp_path / ".site.abcd1234.tmp" / "thumbs").mkdir(parents=True)  # a build killed half way
    (tmp_path / ".site.old.wxyz5678").mkdir()
    (tmp_path / ".site.notmine").mkdir()
    result = invoke("browse", run2, "--out", out, "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.notmine", "site"]
