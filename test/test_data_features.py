"""The .npz feature-file loader: round trip and clear rejection of bad files."""
import numpy as np
import pytest

from aecf_ros.data.features import FeatureSet, load_features, save_features


def _example(n=6):
    rng = np.random.default_rng(0)
    emb = {"image": rng.normal(size=(n, 8)).astype(np.float32), "text": rng.normal(size=(n, 5)).astype(np.float32)}
    labels = (rng.random((n, 3)) < 0.5).astype(np.uint8)
    return emb, labels


def test_round_trip_keeps_every_array(tmp_path):
    emb, labels = _example()
    present = {"text": np.array([1, 1, 0, 1, 0, 1], bool)}
    split = np.array(["train"] * 4 + ["val"] * 2)
    path = save_features(tmp_path / "coco_clip.npz", emb, labels, present, ["person", "car", "dog"], split)
    fs = load_features(path)
    assert isinstance(fs, FeatureSet) and len(fs) == 6
    assert fs.modalities == ["image", "text"] and fs.dims == {"image": 8, "text": 5}
    np.testing.assert_array_equal(fs.embeddings["image"], emb["image"])
    np.testing.assert_array_equal(fs.present["text"], present["text"])
    assert fs.present["image"].all()
    np.testing.assert_array_equal(fs.labels, labels)
    assert fs.class_names == ["person", "car", "dog"]
    val = fs.subset("val")
    assert len(val) == 2 and (val.split == "val").all()


def test_nan_allowed_only_in_absent_rows(tmp_path):
    emb, labels = _example()
    emb["text"][2] = np.nan
    present = {"text": np.array([1, 1, 0, 1, 1, 1], bool)}
    fs = load_features(save_features(tmp_path / "ok.npz", emb, labels, present))
    assert np.isfinite(fs.embeddings["text"]).all()
    np.savez(tmp_path / "bad.npz", emb_image=emb["image"], emb_text=emb["text"], labels=labels)
    with pytest.raises(ValueError, match="non-finite.*row 2"):
        load_features(tmp_path / "bad.npz")


@pytest.mark.parametrize("arrays, message", [
    ({"emb_image": np.zeros((4, 3))}, "missing 'labels'"),
    ({"labels": np.zeros((4, 2))}, "no embeddings"),
    ({"emb_image": np.zeros((5, 3)), "labels": np.zeros((4, 2))}, "5 rows but 'labels' has 4"),
    ({"emb_image": np.zeros(4), "labels": np.zeros((4, 2))}, r"must be \[N, D\]"),
    ({"emb_image": np.zeros((4, 3)), "labels": np.full((4, 2), 2)}, "only 0 and 1"),
    ({"emb_image": np.zeros((4, 3)), "labels": np.zeros(4)}, r"must be \[N, C\]"),
    ({"emb_image": np.zeros((4, 3)), "labels": np.zeros((4, 2)), "present_lidar": np.ones(4, bool)}, "without a matching"),
    ({"emb_image": np.zeros((4, 3)), "labels": np.zeros((4, 2)), "present_image": np.ones(3, bool)}, "present_image"),
    ({"emb_image": np.zeros((4, 3)), "labels": np.zeros((4, 2)), "class_names": np.array(["a"])}, "class_names"),
    ({"emb_image": np.zeros((4, 3)), "labels": np.zeros((4, 2)), "split": np.array(["train"])}, "split"),
])
def test_bad_files_are_rejected_with_a_clear_message(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_features(path)


def test_missing_truncated_and_pickled_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_features(tmp_path / "nope.npz")
    emb, labels = _example()
    good = save_features(tmp_path / "good.npz", emb, labels)
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable"):
        load_features(tmp_path / "cut.npz")
    np.savez(tmp_path / "obj.npz", emb_image=np.array([object()] * 4), labels=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="not a readable"):
        load_features(tmp_path / "obj.npz")
