"""The scene generator: determinism, label/view consistency, and that every view is
informative but incomplete (the property the fusion benchmark relies on)."""
import dataclasses

import numpy as np
import pytest

from aecf_ros.data.classes import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES
from aecf_ros.data.coverage import modality_coverage
from aecf_ros.data.scenes import (MIN_CAMERA_PIXELS, MIN_LIDAR_POINTS, SOURCE_GROUND, Scene, SceneConfig,
                                  generate_scene, generate_scenes)
from aecf_ros.train.arrays import build_arrays

N_SCENES = 100


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return list(generate_scenes(N_SCENES, seed=0))


def _same(a: Scene, b: Scene) -> bool:
    return (np.array_equal(a.image, b.image) and np.array_equal(a.points, b.points)
            and np.array_equal(a.labels, b.labels) and a.text == b.text)


def test_class_names_are_unique_and_sized_for_a_robot():
    assert 12 <= NUM_CLASSES <= 16
    assert len(set(CLASS_NAMES)) == NUM_CLASSES
    assert CLASS_INDEX["person"] == 0


def test_same_seed_and_index_give_identical_scene_regardless_of_call_order():
    first = generate_scene(7, seed=3)
    for i in (0, 1, 2, 9):  # unrelated calls in between must not matter
        generate_scene(i, seed=3)
    again = generate_scene(7, seed=3)
    assert _same(first, again)
    assert _same(first, list(generate_scenes(1, seed=3, start=7))[0])


def test_different_index_or_seed_gives_different_scene():
    base = generate_scene(4, seed=0)
    assert not np.array_equal(base.image, generate_scene(5, seed=0).image)
    assert not np.array_equal(base.image, generate_scene(4, seed=1).image)
    assert base.text != generate_scene(5, seed=0).text or not np.array_equal(base.points, generate_scene(5).points)


def test_scene_arrays_have_documented_shapes_and_ranges(scenes):
    for sc in scenes[:20]:
        assert sc.image.shape == (240, 320, 3) and sc.image.dtype == np.uint8
        assert sc.points.dtype == np.float32 and sc.points.shape[1] == 4
        assert 3000 <= len(sc.points) <= 20000
        assert np.isfinite(sc.points).all()
        assert sc.points[:, 3].min() >= 0 and sc.points[:, 3].max() <= 1
        assert sc.point_source.shape == (len(sc.points),)
        assert sc.labels.dtype == np.uint8 and sc.labels.shape == (NUM_CLASSES,)
        assert isinstance(sc.text, str) and sc.text


def test_labels_are_exactly_the_classes_of_the_objects(scenes):
    for sc in scenes:
        assert set(np.flatnonzero(sc.labels)) == {o.class_id for o in sc.objects}
        assert 1 <= sc.labels.sum() <= SceneConfig().max_objects


def test_lidar_ground_lies_at_minus_sensor_height(scenes):
    sc = scenes[0]
    ground = sc.points[sc.point_source == SOURCE_GROUND]
    assert abs(float(np.median(ground[:, 2])) + SceneConfig().sensor_height_m) < 0.05


def test_every_view_is_informative_but_incomplete(scenes):
    cov = modality_coverage(scenes)
    means = {m: float(np.nanmean(cov[m])) for m in ("camera", "lidar", "text")}
    # documented: camera ~0.6 (forward FOV only), lidar ~0.75 (360 deg, small things sparse), text ~0.45
    assert 0.45 <= means["camera"] <= 0.8, means
    assert 0.6 <= means["lidar"] <= 0.9, means
    assert 0.3 <= means["text"] <= 0.65, means
    for m in ("camera", "text"):  # neither sees any class almost always (lidar: see next tests)
        assert np.nanmax(cov[m]) < 0.9, (m, cov[m])
    for m in ("camera", "lidar", "text"):  # every class leaves some trace in every view
        assert np.nanmin(cov[m]) > 0.1, (m, cov[m])


def test_camera_misses_objects_behind_that_lidar_sees(scenes):
    behind = [o for sc in scenes for o in sc.objects if abs(o.azimuth_deg) > 90]
    assert len(behind) > 30
    assert all(o.camera_pixels == 0 for o in behind)
    big = [o for o in behind if o.class_name in ("car", "forklift", "person", "door")]
    assert np.mean([o.lidar_points >= MIN_LIDAR_POINTS for o in big]) > 0.85


def test_camera_sees_near_objects_in_its_field_of_view(scenes):
    near = [o for sc in scenes for o in sc.objects if o.in_camera_fov and o.range_m < 8]
    assert np.mean([o.camera_pixels >= MIN_CAMERA_PIXELS for o in near]) > 0.75


def test_lidar_gets_sparser_with_range(scenes):
    objs = [o for sc in scenes for o in sc.objects]
    near = np.mean([o.lidar_points for o in objs if o.range_m < 6])
    far = np.mean([o.lidar_points for o in objs if o.range_m > 12])
    assert near > 3 * far


def test_small_and_flat_classes_are_hard_for_lidar(scenes):
    cov = modality_coverage(scenes)["lidar"]
    for hard in ("fire_extinguisher", "traffic_cone", "pallet", "bicycle"):
        for easy in ("car", "forklift", "person"):
            assert cov[CLASS_INDEX[hard]] < cov[CLASS_INDEX[easy]], (hard, easy, cov)


def test_text_mentions_about_half_with_some_mistakes(scenes):
    cov = modality_coverage(scenes)["text"]
    assert cov[CLASS_INDEX["person"]] > cov[CLASS_INDEX["trash_bin"]]
    named = np.stack([sc.text_classes for sc in scenes]).astype(bool)
    truth = np.stack([sc.labels for sc in scenes]).astype(bool)
    wrong = (named & ~truth).sum() / max(named.sum(), 1)
    assert 0.0 < wrong < 0.15
    assert any(not sc.text_classes.any() for sc in scenes)  # some sentences name nothing


def test_config_is_frozen_and_validated():
    cfg = SceneConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.night_prob = 0.0
    with pytest.raises(ValueError, match="min_objects"):
        SceneConfig(min_objects=5, max_objects=2)
    small = generate_scene(0, config=SceneConfig(image_width=64, image_height=48))
    assert small.image.shape == (48, 64, 3)


def test_build_arrays_goes_through_the_encoders_preprocessing(scenes):
    from aecf_ros.encoders.camera import INPUT_SIZE, preprocess_image
    from aecf_ros.encoders.lidar import MAX_POINTS, preprocess_points

    arr = build_arrays(4, seed=0, start=2)
    assert arr.labels.shape == (4, NUM_CLASSES)
    assert arr.images.shape == (4, *INPUT_SIZE, 3)
    assert arr.points.shape == (4, MAX_POINTS, 4) and len(arr.texts) == 4
    for i in range(4):
        sc = scenes[2 + i]
        assert np.array_equal(arr.labels[i], sc.labels) and arr.texts[i] == sc.text
        assert preprocess_image(arr.images[i]).equal(preprocess_image(sc.image))
        assert preprocess_points(arr.points_of(i)).equal(preprocess_points(sc.points))
