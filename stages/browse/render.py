"""HTML of the browse site, from a `RunView`: index, round pages, cluster pages, tracklet pages, evaluation pages.

Every text that comes from the run (tracklet names, attributes, paths) goes through `html.escape`. Links are
relative, so the folder opens from disk anywhere. Pages are handed to `emit(path, text)` (site-relative path) as
they are made, never all held at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

import numpy as np

from stages.browse.assets import LISTING_JS
from stages.browse.collect import RoundView, RunView
from stages.browse.stats import distinct_per_group, transitions, violated_pairs
from stages.browse.thumbs import Thumbs
from stages.views.labels import camera_text, format_gap, format_span, format_time
from stages.views.ranklist import time_gap, verdicts

#: Tracklets per tracklet page, members in a round page's strip, items per listing page.
TRACKLETS_PER_PAGE = 100
STRIP = 12
CLUSTERS_PER_PAGE, NOISE_PER_PAGE, QUERIES_PER_PAGE = 50, 200, 40

Emit = Callable[[str, str], None]


# --- paths and small pieces --------------------------------------------------------------------------------


def round_page(r: int) -> str:
    return f"round_{r:03d}/index.html"


def cluster_page(r: int, c: int) -> str:
    return f"round_{r:03d}/clusters/c{c:05d}.html"


def eval_page(r: int) -> str:
    return f"round_{r:03d}/eval.html"


def tracklet_page(row: int) -> str:
    return f"tracklets/t{row // TRACKLETS_PER_PAGE:04d}.html"


def tracklet_link(row: int) -> str:
    return f"{tracklet_page(row)}#t{row}"


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def number(value: float | None, digits: int = 3) -> str:
    """A number for people: '-' for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def attr_number(value: float | int | None) -> str:
    """A data-* value: '' for unknown, so scripts read it as NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(int(value))


class Site:
    """Renders pages of one RunView, with links relative to each page's folder depth."""

    def __init__(self, view: RunView, thumbs: Thumbs) -> None:
        self.view = view
        self.thumbs = thumbs
        self.train = view.train
        self.rounds = sorted(view.rounds)
        self.shown = sorted(set(view.rounds) | set(view.evals))
        self.labels = view.camera_labels

    def camera(self, camera: int) -> str:
        """A camera's label, as every page, figure and export names it."""
        return camera_text(self.labels, int(camera))

    # -- shared ------------------------------------------------------------------------------------------

    def page(self, title: str, body: str, depth: int, *, script: bool = False) -> str:
        up = "../" * depth
        tail = f"<script>\n{LISTING_JS}</script>\n" if script else ""
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f'<title>{esc(title)}</title><link rel="stylesheet" href="{up}site.css"></head>\n'
                f"<body>\n{body}\n{tail}</body></html>\n")

    def nav(self, depth: int, *extra: tuple[str, str]) -> str:
        up = "../" * depth
        links = [f'<a href="{up}index.html">run {esc(self.view.run.name)}</a>']
        links += [f'<a href="{up}{href}">{esc(text)}</a>' for href, text in extra]
        return "<nav>" + " › ".join(links) + "</nav>"

    def img(self, frame: str, depth: int, *, owner: str, alt: str, title: str = "") -> str:
        """A lazily loaded thumbnail of `frame`; `owner` names its tracklet when the frame is missing."""
        src = ("../" * depth) + self.thumbs.add(frame, owner)
        return f'<img src="{esc(src)}" loading="lazy" alt="{esc(alt)}" title="{esc(title or alt)}">'

    def span_text(self, row: int) -> str:
        if self.train.start is None:
            return "no times"
        return format_span(float(self.train.start[row]), float(self.train.end[row]))

    def tracklet_thumb(self, row: int, depth: int, *, caption: str = "", note: str = "") -> str:
        """One frame of a train tracklet, linked to its tracklet section, with camera and time under it (or
        `caption`), then `note` (HTML) on a second line."""
        name = str(self.train.names[row])
        cam = self.camera(self.train.camera[row])
        when = f" · {format_time(float(self.train.start[row]))}" if self.train.start is not None else ""
        title = f"{name} · cam {cam} · {self.span_text(row)} · id {int(self.train.person_id[row])}"
        image = self.img(self.train.cover(row), depth, owner=f"train tracklet {name}", alt=name, title=title)
        caption = caption or f"{cam}{when}"
        note = f"<br>{note}" if note else ""
        return (f'<figure><a href="{"../" * depth}{tracklet_link(row)}">{image}</a>'
                f"<figcaption>{esc(caption)}{note}</figcaption></figure>")

    def cluster_ref(self, r: int, label: int, depth: int, *, text: str | None = None) -> str:
        up = "../" * depth
        if label < 0:
            return f'<a href="{up}{round_page(r)}#noise">{esc(text or "noise")}</a>'
        return f'<a href="{up}{cluster_page(r, label)}">{esc(text or f"cluster {label}")}</a>'

    # -- index ---------------------------------------------------------------------------------------------

    def index(self) -> str:
        view = self.view
        rows = []
        for r in self.shown:
            rv, ev = view.rounds.get(r), view.evals.get(r)
            cells = [f"<td>{r}</td>"]
            if rv is not None:
                n = len(rv.labels)
                violations = int(rv.stats.violations.sum()) if rv.cannot_link is not None else None
                cells += [f'<td class="n">{n}</td>', f'<td class="n">{rv.count}</td>',
                          f'<td class="n">{rv.noise} ({rv.noise / max(n, 1):.1%})</td>',
                          f'<td class="n">{number(_float(rv.attrs.get("eps")), 4)}</td>',
                          f'<td class="n">{number(violations)}</td>',
                          f'<td class="n">{number(rv.quality.get("nmi"))}</td>',
                          f'<td class="n">{number(rv.quality.get("purity"))}</td>']
            else:
                cells += ["<td>-</td>"] * 7
            if ev is not None:
                cells += [f'<td class="n">{number(ev.metrics["mAP"])}</td>',
                          f'<td class="n">{number(ev.metrics.get("rank-1"))}</td>']
            else:
                cells += ["<td>-</td>"] * 2
            links = []
            if rv is not None:
                links.append(f'<a href="{round_page(r)}">clusters</a>')
            if ev is not None:
                links.append(f'<a href="{eval_page(r)}">evaluation</a>')
            cells.append(f"<td>{' · '.join(links)}</td>")
            rows.append(f'<tr data-round="{r}">{"".join(cells)}</tr>')
        head = ("<tr><th>round</th><th>tracklets</th><th>clusters</th><th>noise</th><th>eps</th>"
                "<th>cannot-link violations</th><th>NMI</th><th>purity</th><th>mAP</th><th>rank-1</th><th>pages</th></tr>")
        n = len(self.train)
        chunks = " · ".join(f'<a href="{tracklet_page(start)}">{start}–{min(start + TRACKLETS_PER_PAGE, n) - 1}</a>'
                            for start in range(0, n, TRACKLETS_PER_PAGE))
        body = (f"<h1>run {esc(view.run.name)}</h1>"
                f'<dl class="numbers"><dt>dataset</dt><dd>{esc(view.dataset)} ({esc(view.fingerprint[:12])})</dd>'
                f"<dt>train tracklets</dt><dd>{n}</dd><dt>frames</dt><dd>{esc(self.train.root)}</dd>"
                f"<dt>aux.h5</dt><dd>{'yes' if view.has_aux else 'no (no times, no cannot-links)'}</dd></dl>"
                f'<h2>Rounds</h2><table id="rounds">{head}{"".join(rows)}</table>'
                "<p class=\"legend\">noise: tracklets in no cluster; NMI and purity against the true ids, when known; "
                "mAP and rank-1 of round R's model (its eval.h5).</p>"
                f"<h2>Train tracklets by index</h2><p>{chunks}</p>")
        return self.page(f"run {view.run.name}", body, 0)

    # -- round pages -------------------------------------------------------------------------------------------

    def _previous(self, r: int) -> int | None:
        earlier = [x for x in self.rounds if x < r]
        return earlier[-1] if earlier else None

    def _next(self, r: int) -> int | None:
        later = [x for x in self.rounds if x > r]
        return later[0] if later else None

    def _members(self, rv: RoundView) -> list[np.ndarray]:
        """Each cluster's rows ordered by camera, then start time, then row."""
        start = self.train.start if self.train.start is not None else np.zeros(len(rv.labels))
        rows = np.flatnonzero(rv.labels >= 0)
        order = rows[np.lexsort((rows, start[rows], self.train.camera[rows], rv.labels[rows]))]
        return np.split(order, np.cumsum(rv.stats.sizes)[:-1]) if rv.count else []

    def round_pages(self, r: int, emit: Emit) -> None:
        rv = self.view.rounds[r]
        members = self._members(rv)
        previous, following = self._previous(r), self._next(r)
        emit(round_page(r), self.round_page(rv, members, previous))
        before = self._transition_table(rv, previous)
        after = self._transition_table(rv, following)
        pairs = violated_pairs(rv.labels, rv.cannot_link)
        partner_rows = np.concatenate([pairs, pairs[:, ::-1]]) if len(pairs) else pairs
        partners: dict[int, list[int]] = {}
        for a, b in partner_rows.tolist():  # violated pairs only: few
            partners.setdefault(a, []).append(b)
        for c in range(rv.count):
            emit(cluster_page(r, c), self.cluster_page(rv, c, members[c], before, after, partners))

    def _transition_table(self, rv: RoundView, other: int | None):
        if other is None:
            return None
        clusters, labels, counts = transitions(rv.labels, self.view.rounds[other].labels)
        bounds = np.searchsorted(clusters, np.arange(rv.count + 1))
        return other, labels, counts, bounds

    def round_page(self, rv: RoundView, members: list[np.ndarray], previous: int | None) -> str:
        r, st, n = rv.round, rv.stats, len(rv.labels)
        merged = None
        if previous is not None:
            before = self.view.rounds[previous].labels
            merged = distinct_per_group(np.where(before >= 0, rv.labels, -1), before, rv.count)
        cards = []
        for c in range(rv.count):
            rows = members[c]
            strip = "".join(self.tracklet_thumb(int(row), 1) for row in rows[:STRIP].tolist())
            if len(rows) > STRIP:
                strip += f'<span class="more">+{len(rows) - STRIP} more</span>'
            purity = float(st.purity[c])
            facts = [f"{int(st.sizes[c])} tracklets", f"{int(st.cameras[c])} camera{'s' if st.cameras[c] != 1 else ''}"]
            if not math.isnan(purity):
                facts.append(f"purity {purity:.2f} (id {int(st.majority[c])})")
            if rv.cannot_link is not None:
                facts.append(f"{int(st.violations[c])} cannot-link violation{'s' if st.violations[c] != 1 else ''}")
            facts.append(f"spread {number(float(st.spread[c]))}")
            if merged is not None:
                facts.append(f"from {int(merged[c])} round-{previous} cluster{'s' if merged[c] != 1 else ''}")
            bad = " bad" if rv.cannot_link is not None and st.violations[c] else ""
            data = {"id": c, "size": int(st.sizes[c]), "cameras": int(st.cameras[c]), "purity": purity,
                    "majority": int(st.majority[c]) if st.majority[c] >= 0 else None,
                    "violations": int(st.violations[c]) if rv.cannot_link is not None else None,
                    "spread": float(st.spread[c]), "merged": int(merged[c]) if merged is not None else None}
            attrs = " ".join(f'data-{key}="{attr_number(value)}"' for key, value in data.items())
            cards.append(f'<div class="card{bad}" id="c{c}" {attrs}><div class="head">'
                         f'<a href="{cluster_page(r, c).split("/", 1)[1]}">cluster {c}</a> · {esc(" · ".join(facts))}'
                         f'</div><div class="strip">{strip}</div></div>')
        noise_rows = np.flatnonzero(rv.labels < 0)
        tiles = []
        for row in noise_rows.tolist():
            start = attr_number(float(self.train.start[row])) if self.train.start is not None else ""
            tiles.append(f'<div class="item" id="n{row}" data-index="{row}" data-camera="{int(self.train.camera[row])}" '
                         f'data-start="{start}">{self.tracklet_thumb(row, 1)}</div>')
        numbers = [("tracklets", n), ("clusters", rv.count), ("noise", f"{rv.noise} ({rv.noise / max(n, 1):.1%})"),
                   ("eps", f"{number(_float(rv.attrs.get('eps')), 4)} ({rv.attrs.get('eps_source', '?')})"),
                   ("algorithm", rv.attrs.get("algorithm", "?"))]
        if rv.cannot_link is not None:
            numbers.append(("cannot-link violations", f"{int(st.violations.sum())} of {len(rv.cannot_link)} pairs"))
        numbers += [(key.replace("_", " "), number(value)) for key, value in rv.quality.items()]
        ev = self.view.evals.get(r)
        if ev is not None:
            numbers.append(("mAP (round's model)", number(ev.metrics["mAP"])))
        summary = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in numbers)
        sorts = [("size", "size"), ("cameras", "cameras"), ("purity", "purity"), ("majority", "majority id"),
                 ("violations", "cannot-link violations"), ("spread", "distance spread"), ("id", "cluster id")]
        if merged is not None:
            sorts.insert(5, ("merged", f"round-{previous} clusters merged"))
        options = "".join(f'<option value="{key}">{esc(text)}</option>' for key, text in sorts)
        controls = (f'<form class="controls" data-for="clusters">sort <select name="sort">{options}</select> '
                    '<label><input type="checkbox" name="desc" checked> descending</label> '
                    '<label>size ≥ <input type="number" min="0" data-key="size" data-op="min"></label> '
                    '<label>cameras ≥ <input type="number" min="0" data-key="cameras" data-op="min"></label> '
                    '<label>purity ≤ <input type="number" min="0" max="1" step="0.05" data-key="purity" data-op="max"></label> '
                    '<label>majority id <input type="number" min="0" data-key="majority" data-op="eq"></label> '
                    '<label>spread ≥ <input type="number" min="0" step="0.05" data-key="spread" data-op="min"></label> '
                    '<label><input type="checkbox" data-key="violations" data-op="flag"> with violations only</label></form>')
        noise_controls = ('<form class="controls" data-for="noise-list">sort <select name="sort">'
                          '<option value="index">tracklet index</option><option value="camera">camera</option>'
                          '<option value="start">start time</option></select> '
                          '<label><input type="checkbox" name="desc"> descending</label> '
                          '<label>camera <select data-key="camera" data-op="eq"><option value="">any</option>'
                          + "".join(f'<option value="{c}">{esc(self.camera(c))}</option>'
                                    for c in sorted(set(self.train.camera[noise_rows].tolist())))
                          + "</select></label></form>")
        extra = [(round_page(r), f"round {r}")]
        if ev is not None:
            extra.append((eval_page(r), f"round {r} evaluation"))
        body = (self.nav(1, *extra) + f"<h1>Round {r}: {rv.count} clusters, {rv.noise} noise tracklets</h1>"
                + self._round_links(r, 1)
                + f'<dl class="numbers" id="summary" data-tracklets="{n}" data-clusters="{rv.count}" '
                  f'data-noise="{rv.noise}">{summary}</dl>'
                + "<p class=\"legend\">camera spread: distinct cameras; purity: share of the majority id among members "
                  "with a known id; cannot-link violation: two members seen by one camera at overlapping times "
                  "(aux.h5); spread: mean distance of the members' L2-normalised features to their mean.</p>"
                + f'<h2 id="clusters-head">Clusters</h2>{controls}'
                + _pager("clusters") + f'<div id="clusters" class="listing" data-per-page="{CLUSTERS_PER_PAGE}">'
                + "".join(cards) + "</div>" + _pager("clusters")
                + f'<h2 id="noise">Noise: {rv.noise} tracklets</h2>{noise_controls}' + _pager("noise-list")
                + f'<div id="noise-list" class="listing strip" data-per-page="{NOISE_PER_PAGE}">{"".join(tiles)}</div>'
                + _pager("noise-list"))
        return self.page(f"{self.view.run.name} round {r}", body, 1, script=True)

    def _round_links(self, r: int, depth: int) -> str:
        up = "../" * depth
        links = [f'<a href="{up}{round_page(x)}">{"<b>" if x == r else ""}round {x}{"</b>" if x == r else ""}</a>'
                 for x in self.rounds]
        return f"<p>rounds: {' · '.join(links)}</p>"

    def cluster_page(self, rv: RoundView, c: int, rows: np.ndarray, before, after, partners: dict[int, list[int]]) -> str:
        r, st, train = rv.round, rv.stats, self.train
        purity = float(st.purity[c])
        majority = int(st.majority[c])
        numbers = [("size", int(st.sizes[c])), ("cameras", int(st.cameras[c])),
                   ("purity", f"{number(purity)}" + (f" (majority id {majority}, {int(st.known[c])} ids known)"
                                                    if majority >= 0 else " (no id known)")),
                   ("distance spread", number(float(st.spread[c])))]
        if rv.cannot_link is not None:
            numbers.append(("cannot-link violations", int(st.violations[c])))
        summary = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in numbers)
        moves = "".join(self._moves(rv, c, table, word) for table, word in ((before, "came from"), (after, "went to"))
                        if table is not None)
        lines = []
        for row in rows.tolist():
            name = str(train.names[row])
            frames = "".join(self.img(frame, 2, owner=f"train tracklet {name}", alt=name) for frame in train.frames[row])
            pid = int(train.person_id[row])
            off = majority >= 0 and pid >= 0 and pid != majority
            mates = partners.get(row, [])
            mark = ""
            if mates:
                names = ", ".join(f'<a href="../../{tracklet_link(m)}">{esc(train.names[m])}</a>' for m in mates)
                mark = f'<span class="mark">✗ overlaps on camera {esc(self.camera(train.camera[row]))} with</span> {names}'
            flag = ' class="violated"' if mates else ""
            lines.append(f'<tr{flag} id="t{row}"><td><div class="frames">{frames}</div></td>'
                         f'<td><a href="../../{tracklet_link(row)}">{esc(name)}</a><br>row {row}, '
                         f"{int(train.num_frames[row])} frames</td><td>{esc(self.camera(train.camera[row]))}</td>"
                         f"<td>{esc(self.span_text(row))}</td>"
                         f'<td class="{"off" if off else ""}">{pid}{" (other id)" if off else ""}</td>'
                         f'<td class="n">{number(float(st.member_distance[row]))}</td><td>{mark}</td></tr>')
        head = ("<tr><th>frames</th><th>tracklet</th><th>camera</th><th>time</th><th>person id</th>"
                "<th>distance to mean</th><th>cannot-link</th></tr>")
        steps = []
        if c > 0:
            steps.append(f'<a href="c{c - 1:05d}.html">‹ cluster {c - 1}</a>')
        if c + 1 < rv.count:
            steps.append(f'<a href="c{c + 1:05d}.html">cluster {c + 1} ›</a>')
        body = (self.nav(2, (f"{round_page(r)}#c{c}", f"round {r}"), (cluster_page(r, c), f"cluster {c}"))
                + f"<h1>Round {r}, cluster {c}: {int(st.sizes[c])} tracklets</h1><p>{' · '.join(steps)}</p>"
                + f'<dl class="numbers" id="summary" data-size="{int(st.sizes[c])}">{summary}</dl>'
                + "<h2>Time line</h2>" + self.timeline(rows, rv.stats.violated)
                + moves + f'<h2>Members</h2><table id="members">{head}{"".join(lines)}</table>')
        return self.page(f"{self.view.run.name} round {r} cluster {c}", body, 2)

    def _moves(self, rv: RoundView, c: int, table, word: str) -> str:
        other, labels, counts, bounds = table
        lo, hi = int(bounds[c]), int(bounds[c + 1])
        items = []
        for label, count in zip(labels[lo:hi].tolist(), counts[lo:hi].tolist()):
            ref = self.cluster_ref(other, label, 2)
            items.append(f'<tr><td>{ref}</td><td class="n">{count}</td></tr>')
        kinds = int((labels[lo:hi] >= 0).sum())
        what = ""
        if kinds > 1:
            what = ("a merge of " if word == "came from" else "split over ") + f"{kinds} clusters"
        return (f'<h2>{esc(word.capitalize())} round {other}</h2><p>{esc(what)}</p>'
                f'<table class="moves"><tr><th>round {other}</th><th>members</th></tr>{"".join(items)}</table>')

    def timeline(self, rows: np.ndarray, violated: np.ndarray, width: int = 760) -> str:
        """An inline SVG: one lane per camera, one bar per member over its time span (violated members red)."""
        train = self.train
        if not len(rows):
            return "<p>no members</p>"
        if train.start is None:
            return "<p>no times (the run has no aux.h5 with times)</p>"
        start, end, cams = train.start[rows], train.end[rows], train.camera[rows]
        lanes = sorted(set(cams.tolist()))
        names = [self.camera(cam) for cam in lanes]
        t0, t1 = float(start.min()), float(end.max())
        span = max(t1 - t0, 1e-6)
        left, lane, top = max(60, 12 + 7 * max(len(name) for name in names)), 18, 4
        usable = width - left - 10
        height = top + lane * len(lanes) + 20
        parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
        for i, name in enumerate(names):
            parts.append(f'<text x="4" y="{top + i * lane + 13}">{esc(name)}</text>')
        for row, a, b, cam in zip(rows.tolist(), start.tolist(), end.tolist(), cams.tolist()):
            x = left + (a - t0) / span * usable
            w = max((b - a) / span * usable, 2.0)
            y = top + lanes.index(cam) * lane + 2
            title = f"{train.names[row]}: {format_span(a, b)}"
            mark = ' class="v"' if violated[row] else ""
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane - 4}"{mark}>'
                         f"<title>{esc(title)}</title></rect>")
        axis = top + lane * len(lanes) + 14
        parts.append(f'<text x="{left}" y="{axis}">{esc(format_time(t0))}</text>'
                     f'<text x="{width - 10}" y="{axis}" text-anchor="end">{esc(format_time(t1))}</text></svg>')
        return "".join(parts)

    # -- tracklet pages ----------------------------------------------------------------------------------------

    def tracklet_pages(self, emit: Emit) -> None:
        n = len(self.train)
        for start in range(0, n, TRACKLETS_PER_PAGE):
            emit(tracklet_page(start), self.tracklet_chunk(start, min(start + TRACKLETS_PER_PAGE, n)))

    def tracklet_chunk(self, first: int, stop: int) -> str:
        train = self.train
        sections = []
        for row in range(first, stop):
            name = str(train.names[row])
            frames = "".join(self.img(frame, 1, owner=f"train tracklet {name}", alt=name) for frame in train.frames[row])
            lines = []
            for r in self.rounds:
                rv = self.view.rounds[r]
                label = int(rv.labels[row])
                where = self.cluster_ref(r, label, 1)
                if label >= 0:
                    where += f" ({int(rv.stats.sizes[label])} tracklets)"
                    if rv.stats.violated[row]:
                        where += ' <span class="mark">cannot-link violated</span>'
                nn = []
                for other, distance in zip(rv.knn_index[row].tolist(), rv.knn_distance[row].tolist()):
                    same = label >= 0 and int(rv.labels[other]) == label
                    tag = '<span class="same">same cluster</span>' if same else esc(
                        "noise" if rv.labels[other] < 0 else f"cluster {int(rv.labels[other])}")
                    nn.append(self.tracklet_thumb(other, 1, caption=f"{distance:.3f}", note=tag))
                lines.append(f'<tr><td><a href="../{round_page(r)}">round {r}</a></td><td>{where}</td>'
                             f'<td><div class="nn">{"".join(nn)}</div></td></tr>')
            table = ("<table><tr><th>round</th><th>cluster</th><th>nearest neighbours (distance)</th></tr>"
                     + "".join(lines) + "</table>")
            sections.append(f'<section class="tracklet" id="t{row}"><h2>{esc(name)}</h2>'
                            f"<p>row {row} · camera {esc(self.camera(train.camera[row]))} · {esc(self.span_text(row))} · "
                            f"person id {int(train.person_id[row])} · {int(train.num_frames[row])} frames</p>"
                            f'<div class="frames">{frames}</div>{table}</section>')
        pages = len(train) // TRACKLETS_PER_PAGE + (len(train) % TRACKLETS_PER_PAGE > 0)
        index = first // TRACKLETS_PER_PAGE
        steps = []
        if index > 0:
            steps.append(f'<a href="t{index - 1:04d}.html">‹ tracklets {first - TRACKLETS_PER_PAGE}–{first - 1}</a>')
        if index + 1 < pages:
            steps.append(f'<a href="t{index + 1:04d}.html">tracklets {stop}– ›</a>')
        body = (self.nav(1, (tracklet_page(first), f"tracklets {first}–{stop - 1}"))
                + f"<h1>Train tracklets {first}–{stop - 1}</h1><p>{' · '.join(steps)}</p>"
                + "<p class=\"legend\">nearest neighbours: the 5 closest tracklets in that round's features "
                  "(Euclidean distance of L2-normalised features).</p>" + "".join(sections))
        return self.page(f"{self.view.run.name} tracklets {first}–{stop - 1}", body, 1)

    # -- evaluation pages --------------------------------------------------------------------------------------

    def eval_page(self, r: int) -> str:
        ev = self.view.evals[r]
        q, g = ev.query, ev.gallery
        finite = np.isfinite(ev.ap)
        order = np.r_[np.flatnonzero(finite)[np.argsort(ev.ap[finite], kind="stable")], np.flatnonzero(~finite)]
        items = []
        for row in order.tolist():
            ranked = ev.topk_index[row]
            marks = verdicts(int(q.person_id[row]), int(q.camera[row]), g.person_id[ranked], g.camera[ranked])
            qname = q.names[row]
            tiles = [f'<figure class="q">{self.img(frame, 1, owner=f"query tracklet {qname}", alt=qname)}'
                     f"<figcaption>query</figcaption></figure>" for frame in q.frames[row]]
            tiles.append('<span class="sep"></span>')
            for rank, (gallery_row, mark) in enumerate(zip(ranked.tolist(), marks), start=1):
                gname = g.names[gallery_row]
                gap_text = format_gap(time_gap(q.tracklets[row], g.tracklets[gallery_row]))
                caption = (f'#{rank} id {int(g.person_id[gallery_row])}<span class="name">{esc(gname)}</span>'
                           f"cam {esc(self.camera(g.camera[gallery_row]))}<br>d {ev.topk_distance[row, rank - 1]:.4g}"
                           + (f"<br>{esc(gap_text)}" if gap_text else ""))
                frames = g.frames[gallery_row]
                image = self.img(frames[len(frames) // 2], 1, owner=f"gallery tracklet {gname}", alt=gname,
                                 title=f"{gname} ({mark})")
                tiles.append(f'<figure class="{mark}">{image}<figcaption>{caption}</figcaption></figure>')
            ap = float(ev.ap[row])
            rank1 = 1 if marks and marks[0] == "right" else 0
            times = q.tracklets[row].times
            when = f" · {format_span(times[0], times[-1])}" if times is not None else ""
            items.append(f'<div class="query item" id="q{row}" data-query="{row}" data-ap="{attr_number(ap)}" '
                         f'data-rank1="{rank1}" data-id="{int(q.person_id[row])}">'
                         f"<div>query {row} · {esc(qname)} · id {int(q.person_id[row])} · "
                         f"cam {esc(self.camera(q.camera[row]))}{esc(when)} · "
                         f"AP {number(ap) if finite[row] else 'skipped'}</div><div class=\"row\">{''.join(tiles)}</div></div>")
        flags = ", ".join(f"{key} {'on' if ev.attrs.get(key) else 'off'}" for key in ("toc", "scp", "sts", "rerank")
                          if key in ev.attrs)
        numbers = [(key, number(value)) for key, value in ev.metrics.items()]
        numbers += [("valid / skipped queries", f"{int(finite.sum())} / {int((~finite).sum())}"), ("distance", flags)]
        summary = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in numbers)
        controls = ('<form class="controls" data-for="queries">sort <select name="sort"><option value="ap">AP</option>'
                    '<option value="query">query row</option><option value="id">person id</option></select> '
                    '<label><input type="checkbox" name="desc"> descending</label> '
                    '<label>AP ≤ <input type="number" min="0" max="1" step="0.05" data-key="ap" data-op="max"></label> '
                    '<label>person id <input type="number" min="0" data-key="id" data-op="eq"></label></form>')
        extra = [(eval_page(r), f"round {r} evaluation")]
        if r in self.view.rounds:
            extra.insert(0, (round_page(r), f"round {r}"))
        body = (self.nav(1, *extra) + f"<h1>Round {r} evaluation: mAP {number(ev.metrics['mAP'])}</h1>"
                + f'<dl class="numbers" id="summary" data-queries="{len(ev.ap)}">{summary}</dl>'
                + '<p class="legend">queries by AP, worst first; borders: blue query, green same id, red other id, '
                  "grey same id and camera (ignored by the protocol); d: distance, then the time gap from the "
                  "query's span.</p>" + controls + _pager("queries")
                + f'<div id="queries" class="listing" data-per-page="{QUERIES_PER_PAGE}">{"".join(items)}</div>'
                + _pager("queries"))
        return self.page(f"{self.view.run.name} round {r} evaluation", body, 1, script=True)


def _pager(target: str) -> str:
    return (f'<div class="pager" data-for="{target}"><button type="button" class="prev">‹ previous</button>'
            f'<span class="info"></span><button type="button" class="next">next ›</button></div>')


def _float(value: object) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def render_site(view: RunView, thumbs: Thumbs, emit: Emit) -> None:
    """Hand every page of the site to `emit`; the thumbnails they show are added to `thumbs`."""
    site = Site(view, thumbs)
    emit("index.html", site.index())
    for r in site.rounds:
        site.round_pages(r, emit)
    for r in sorted(view.evals):
        emit(eval_page(r), site.eval_page(r))
    site.tracklet_pages(emit)
