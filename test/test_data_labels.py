"""Label files beside a bag (aecf_ros.data.labels): exact times, half-open intervals, both time
forms, errors that name file and line; make-bag's label file says what its ground-truth topic says."""
from __future__ import annotations

import numpy as np
import pytest

from aecf_ros.data.labels import (Interval, LabelError, LabelTrack, ns_to_seconds, read_class_list, read_labels,
                                  seconds_to_ns, write_labels)

START = 1_700_000_000_000_000_000
END = START + 20_000_000_000
CLASSES = ["person", "pallet", "forklift"]


def _file(tmp_path, text, name="labels.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_times_are_read_to_the_nanosecond_and_written_back_exactly():
    assert seconds_to_ns("1700000000.123456789") == 1_700_000_000_123_456_789
    assert seconds_to_ns(" 12.5 ") == 12_500_000_000
    assert ns_to_seconds(1_700_000_000_123_456_789) == "1700000000.123456789"
    for ns in (0, 1, 999_999_999, START + 7):
        assert seconds_to_ns(ns_to_seconds(ns)) == ns
    with pytest.raises(ValueError):
        seconds_to_ns("nan")


def test_intervals_are_half_open_and_unlabelled_time_has_no_label(tmp_path):
    p = _file(tmp_path, "start,end,classes\n"
                        "1700000000.0,1700000004.0,person;pallet\n"
                        "# a comment line\n"
                        "1700000004.0,1700000008.0,\n"
                        "1700000010.0,1700000012.5,forklift\n")
    track = read_labels(p, CLASSES, bag_start_ns=START, bag_end_ns=END)
    assert len(track) == 3 and track.labelled_seconds() == pytest.approx(10.5)
    assert track.at(START).tolist() == [1, 1, 0]
    assert track.at(START + 3_999_999_999).tolist() == [1, 1, 0]
    assert track.at(START + 4_000_000_000).tolist() == [0, 0, 0]  # the end belongs to the next row
    assert track.at(START + 9_000_000_000) is None  # a gap between rows: unlabelled
    assert track.at(START + 12_500_000_000) is None
    assert track.at(START - 1) is None


def test_offsets_from_the_bag_start_give_the_same_track(tmp_path):
    absolute = _file(tmp_path, "start,end,classes\n1700000001.5,1700000003,pallet\n", "a.csv")
    relative = _file(tmp_path, "offset_start,offset_end,classes\n1.5,3,pallet\n", "r.csv")
    a = read_labels(absolute, CLASSES, bag_start_ns=START, bag_end_ns=END)
    r = read_labels(relative, CLASSES, bag_start_ns=START, bag_end_ns=END)
    assert [(i.start_ns, i.end_ns, i.classes) for i in a.intervals] == \
        [(i.start_ns, i.end_ns, i.classes) for i in r.intervals]


def test_without_a_class_list_the_order_is_first_appearance(tmp_path):
    p = _file(tmp_path, "start,end,classes\n1700000002,1700000003,b;a\n1700000000,1700000001,c\n")
    assert read_labels(p).class_names == ["b", "a", "c"]


@pytest.mark.parametrize("rows, message", [
    ("1700000004,1700000004,person\n", "labels.csv:2: start 1700000004 is not before end"),
    ("1700000000,1700000005,person\n1700000004,1700000008,pallet\n", "labels.csv:3: interval starting"),
    ("1700000000,1700000005,robot\n", "labels.csv:2: unknown class 'robot'"),
    ("1600000000,1600000005,person\n", "labels.csv:2: interval [1600000000.000000000, 1600000005.000000000) lies "
                                       "outside the bag"),
    ("1700000000,1700000030,person\n", "lies outside the bag"),
    ("1700000000,1700000005,person;person\n", "listed twice"),
    ("1700000000,soon,person\n", "labels.csv:2: 'soon' is not a number"),
    ("1700000000,1700000005\n", "labels.csv:2: expected 3 columns"),
    ("", "the label set is empty"),
])
def test_bad_label_files_name_the_file_and_line(tmp_path, rows, message):
    p = _file(tmp_path, "start,end,classes\n" + rows)
    with pytest.raises(LabelError) as err:
        read_labels(p, CLASSES, bag_start_ns=START, bag_end_ns=END)
    assert message in str(err.value)
    assert str(p) in str(err.value)


def test_bad_header_and_class_list(tmp_path):
    with pytest.raises(LabelError, match="header must be"):
        read_labels(_file(tmp_path, "from,to,what\n1,2,a\n"))
    with pytest.raises(LabelError, match="no header"):
        read_labels(_file(tmp_path, "\n\n"))
    assert read_class_list(_file(tmp_path, "# robot classes\nperson\n\npallet\n", "c.txt")) == ["person", "pallet"]
    with pytest.raises(LabelError, match="c2.txt:2: class 'person' is listed twice"):
        read_class_list(_file(tmp_path, "person\nperson\n", "c2.txt"))
    with pytest.raises(LabelError, match="empty"):
        read_class_list(_file(tmp_path, "# nothing\n", "c3.txt"))


def test_write_then_read_round_trip(tmp_path):
    rows = [Interval(START + 123, START + 4_000_000_001, ("person",)), Interval(START + 5_000_000_000, END, ())]
    track = read_labels(write_labels(tmp_path / "l.csv", rows), CLASSES, bag_start_ns=START, bag_end_ns=END)
    assert [(i.start_ns, i.end_ns, i.classes) for i in track.intervals] == [(r.start_ns, r.end_ns, r.classes)
                                                                               for r in rows]
    assert isinstance(track, LabelTrack)


def test_make_bag_label_file_says_what_its_ground_truth_topic_says(tmp_path):
    """At every fusion tick of the bag, the newest ground-truth message and labels.csv agree."""
    from aecf_ros import graph as T
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.bag.bag_io import BagReader, deserialize
    from aecf_ros.data.classes import CLASS_NAMES
    from aecf_ros.sim.scene_msgs import labels_from_ground_truth

    bag = tmp_path / "bag"
    write_scene_bag(bag, BagSpec(duration_s=7.0, scene_hold_s=1.5, camera_hz=2.0, lidar_hz=2.0, seed=3))
    assert read_class_list(bag / "classes.txt") == list(CLASS_NAMES)
    with BagReader(bag) as reader:
        info = reader.info()
        truth = [(t, labels_from_ground_truth(deserialize(raw, mt), CLASS_NAMES)[0])
                 for _, mt, t, raw in reader.messages([T.GROUND_TRUTH_TOPIC])]
    track = read_labels(bag / "labels.csv", CLASS_NAMES, bag_start_ns=info.start_ns, bag_end_ns=info.end_ns)
    assert len(track) == 5  # ceil(7 / 1.5) scenes
    checked = 0
    for now in range(info.start_ns, info.end_ns + 1, 100_000_000):
        newest = [lab for t, lab in truth if t <= now][-1]
        assert np.array_equal(track.at(now), newest), ns_to_seconds(now)
        checked += 1
    assert checked >= 60
