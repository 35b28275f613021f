"""views: what the rank list, montage, transit plot and report figure say (the text and data handed to PIL /
matplotlib, not pixels); the drawings themselves are tested in test_evaluate.py and test_cluster.py."""

from pathlib import Path

import numpy as np
import pytest

from stages.artifacts.h5 import Artifact, Provenance
from stages.data.base import Tracklet
from stages.errors import AuxReidError
from stages.views.labels import camera_labels_of, camera_text, fit_text, format_gap, format_span, format_time
from stages.views.montage import majority_id, montage_title, row_label
from stages.views.ranklist import choose_queries, gallery_caption, parse_queries, query_caption, time_gap, worst_queries


def test_worst_queries_lowest_ap_first_skipped_queries_left_out():
    ap = np.array([0.5, np.nan, 0.1, 0.9, 0.1, 0.3])
    np.testing.assert_array_equal(worst_queries(ap, 3), [2, 4, 5])
    np.testing.assert_array_equal(worst_queries(ap, 10), [2, 4, 5, 0, 3])
    np.testing.assert_array_equal(choose_queries(ap, count=2), [2, 4])
    np.testing.assert_array_equal(choose_queries(ap, queries=[3, 1, 3]), [3, 1])


def test_choose_queries_errors():
    ap = np.array([0.5, np.nan])
    with pytest.raises(AuxReidError, match=r"^--ranklist 2 is out of range; e\.h5 has queries 0\.\.1$"):
        choose_queries(ap, queries=[0, 2], source="e.h5")
    with pytest.raises(AuxReidError, match=r"^--count must be >= 1, got 0$"):
        choose_queries(ap, count=0)
    with pytest.raises(AuxReidError, match=r"^e\.h5 has no evaluated query \(every AP is NaN\); give query rows"):
        choose_queries(np.array([np.nan]), source="e.h5")


def test_parse_queries():
    assert parse_queries("worst") is None and parse_queries("Worst ") is None
    assert parse_queries("12") == [12] and parse_queries("3,17") == [3, 17]
    with pytest.raises(AuxReidError, match=r"^--ranklist takes 'worst' or query rows such as 3,17; got 'bad'$"):
        parse_queries("bad")


def test_captions_name_query_and_each_gallery_item():
    assert query_caption(12, "q7", 5, "lobby", 0.31415) == "query 12 (q7)  id 5  cam lobby  AP 0.314"
    assert query_caption(0, "0001/0001C2T0001", -1, "C2", float("nan")) == (
        "query 0 (0001/0001C2T0001)  id -1  cam C2  AP skipped")
    assert gallery_caption(1, "g3", 5, "gate", 0.412345, 12.34) == ("#1 id 5", "g3", "cam gate", "d 0.4123", "+12.3 s")
    assert gallery_caption(10, "g4", 7, "C1", 1.5, -4.0) == ("#10 id 7", "g4", "cam C1", "d 1.5", "-4.0 s")
    assert gallery_caption(3, "g5", 7, "C1", 1.5, 0.0)[4] == "overlap"
    assert gallery_caption(3, "g5", 7, "C1", 1.5, None) == ("#3 id 7", "g5", "cam C1", "d 1.5")


def test_format_time_reads_epoch_timestamps_as_utc_dates_and_other_times_as_seconds():
    assert format_time(1772373727.9) == "2026-03-01 14:02:07"  # whole seconds, as a clock shows them
    assert format_time(12.44) == "12.4 s" and format_time(999_999_999.0) == "999999999.0 s"
    assert format_time(1e9) == "2001-09-09 01:46:40"
    assert format_span(1772373727.0, 1772373731.5) == "2026-03-01 14:02:07–14:02:11"
    assert format_span(1772409599.0, 1772409601.0) == "2026-03-01 23:59:59–2026-03-02 00:00:01"
    assert format_span(462.04, 470.26) == "462.0–470.3 s"
    assert (format_gap(12.34), format_gap(-4.0), format_gap(0.0), format_gap(None)) == ("+12.3 s", "-4.0 s", "overlap", "")


def test_camera_text_is_the_label_and_the_index_for_files_without_labels():
    labels = camera_labels_of({"camera_labels": np.array(["gate", "lobby"])})
    assert labels == ("gate", "lobby")
    assert (camera_text(labels, 1), camera_text((), 1), camera_text(labels, 2)) == ("lobby", "1", "2")
    assert camera_labels_of({"train/camera": np.zeros(2)}) == ()


def test_fit_text_cuts_a_caption_to_its_tile():
    class Font:  # 6 px per character
        def getlength(self, text):
            return 6 * len(text)

    assert fit_text("lobby", Font(), 30) == "lobby"
    assert fit_text("parking-north", Font(), 30) == "park…"


def test_montage_row_label_names_the_tracklet_its_camera_label_and_readable_times():
    timed = Tracklet(frames=("a", "b"), person_id=3, camera=1, times=(1772373727.0, 1772373731.0), name="t7")
    assert row_label(timed, 4, camera_labels=("gate", "lobby")) == (
        "t7 (#4)", "cam lobby  id 3", "2026-03-01 14:02:07", "to 2026-03-01 14:02:11")
    untimed = Tracklet(frames=("a",), person_id=-1, camera=0, name="0001/0001C1T0001")
    assert row_label(untimed, 0, camera_labels=("C1",)) == ("0001/0001C1T0001 (#0)", "cam C1  id -1")


def test_time_gap_signed_from_the_query_span():
    query = Tracklet(frames=("a",), person_id=0, camera=0, times=(10.0, 20.0))
    after = Tracklet(frames=("b",), person_id=0, camera=1, times=(25.0, 30.0))
    before = Tracklet(frames=("c",), person_id=0, camera=1, times=(1.0, 4.0))
    during = Tracklet(frames=("d",), person_id=0, camera=1, times=(15.0, 40.0))
    assert (time_gap(query, after), time_gap(query, before), time_gap(query, during)) == (5.0, -6.0, 0.0)
    assert time_gap(query, Tracklet(frames=("e",), person_id=0, camera=1)) is None


def test_montage_title_size_purity_off_majority_and_cut_rows():
    assert montage_title(np.array([5, 5, 7, 5, -1]), cluster_id=3, shown=3) == (
        "cluster 3: 5 tracklets, purity 0.750 (majority id 5)", "red: 1 of other ids; rows cut: 3 of 5 shown")
    assert montage_title(np.array([2, 2]), cluster_id=0, shown=2) == (
        "cluster 0: 2 tracklets, purity 1.000 (majority id 2)", "every known id is the majority's; all rows shown")
    assert montage_title(np.array([-1, -1]), cluster_id=1, shown=2) == (
        "cluster 1: 2 tracklets, person ids unknown (no purity)", "no id known; all rows shown")
    assert majority_id(np.array([4, 1, 4, 1])) == 1 and majority_id(np.array([-1])) is None


def _aux(fallback, labels=None):
    cameras, bins = fallback.shape[0], 4
    data = {"sts/edges": np.linspace(-10, 30, bins + 1), "sts/density": np.full((cameras, cameras, bins), 0.5),
            "sts/counts": np.ones((cameras, cameras, bins), np.int64), "sts/fallback": fallback}
    if labels is not None:
        data["camera_labels"] = np.array(labels)
    provenance = Provenance(schema="aux", schema_version=1, dataset="synth", fingerprint="f", round=0)
    return Artifact(path=Path("aux.h5"), provenance=provenance, data=data, attrs={"sts_source": "oracle"})


def test_transit_figure_has_a_legend_and_styles_each_pair_by_its_fallback():
    from matplotlib import pyplot as plt

    from stages.views.transit_plot import BAR_LABEL, LINE_STYLES, transit_figure

    figure = transit_figure(_aux(np.array([[0, 1], [2, 0]])))
    try:
        assert [text.get_text() for text in figure.legends[0].get_texts()] == [
            BAR_LABEL, "p of STS: own histogram", "p of STS: pooled (few gaps)", "p = 1: no evidence"]
        styles = [(line.get_color(), line.get_linestyle()) for axis in figure.axes[:4] for line in axis.get_lines()]
        assert styles == [("black", "-"), ("tab:orange", "--"), ("grey", ":"), ("black", "-")]
        assert LINE_STYLES[1][:2] == ("tab:orange", "--")
    finally:
        plt.close(figure)


@pytest.mark.parametrize(("labels", "titles"), [
    (["gate", "lobby"], ["gate->gate n=4", "gate->lobby n=4", "lobby->gate n=4", "lobby->lobby n=4"]),
    (None, ["0->0 n=4", "0->1 n=4", "1->0 n=4", "1->1 n=4"]),  # a file without labels: the 0-based index, as elsewhere
])
def test_transit_figure_names_each_pair_by_the_camera_labels(labels, titles):
    from matplotlib import pyplot as plt

    from stages.views.transit_plot import transit_figure

    figure = transit_figure(_aux(np.zeros((2, 2), np.int64), labels))
    try:
        assert [axis.get_title() for axis in figure.axes[:4]] == titles
    finally:
        plt.close(figure)


def test_report_figure_x_axes_show_whole_rounds_only():
    from matplotlib import pyplot as plt

    from stages.views.report_plot import MAX_ROUND_TICKS, report_figure
    from stages.views.report_table import RoundRow

    rows = [RoundRow(round=r, mAP=0.1 * r, rank1=0.2, clusters=10 + r, noise_ratio=0.1, nmi=0.5, iterations=100,
                     losses={"total": 1.0 / (r + 1)}, extract_s=1.0, cluster_s=2.0) for r in (0, 1, 2)]
    figure = report_figure(rows, title="run t")
    try:
        for axis in figure.axes:
            assert list(axis.get_xticks()) == [0, 1, 2], axis.get_title()
        assert figure.axes[0].get_xlim() == (-0.5, 2.5)
    finally:
        plt.close(figure)
    many = [RoundRow(round=r, mAP=0.01 * r) for r in range(MAX_ROUND_TICKS + 5)]
    figure = report_figure(many, title="run t")
    try:
        ticks = figure.axes[0].get_xticks()
        assert len(ticks) < len(many) and np.array_equal(ticks, np.round(ticks))
    finally:
        plt.close(figure)
