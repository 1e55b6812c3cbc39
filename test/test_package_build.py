"""The robot path: `colcon build` of this package (venv as underlay) yields a working install space.

This is what a user does on a robot with ROS 2 installed; here colcon, ament_cmake and the
rosidl generators come from PyPI and the venv plays the role of /opt/ros/<distro>.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, ros_env

pytestmark = pytest.mark.slow

NODE_EXECUTABLES = ("camera_encoder", "lidar_encoder", "text_encoder", "fusion_node", "debug_view", "sensor_dropout")


def _package_files() -> list[str]:
    """Files git would ship (tracked + untracked-not-ignored): what a clone of the repo holds. Outside a
    git checkout (a source tarball in a colcon workspace) every file but build outputs and caches."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, capture_output=True,
    )
    if listed.returncode == 0:
        return [f for f in listed.stdout.decode().split("\0") if f and (REPO_ROOT / f).is_file()]
    skip = {".git", ".venv", "build", "install", "log", "__pycache__", ".pytest_cache"}
    return [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO_ROOT).parts) and p.suffix != ".pyc"]


def _colcon_env(venv: Path) -> dict:
    """A ROS user's shell: the venv as underlay (/opt/ros/<distro> on a robot), no PYTHONPATH of this
    session, this session's domain for the tests colcon test runs."""
    env = ros_env(AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv),
                  AECF_TEST_DOMAIN_ID=os.environ["ROS_DOMAIN_ID"])
    for name in ("PYTHONPATH", "AECF_TEST_INSTALL_PREFIX", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return env


@pytest.fixture(scope="module")
def colcon_workspace(tmp_path_factory) -> Path:
    """`colcon build --packages-select aecf_ros` (testing on, the default) of a copy of the package:
    the README's robot commands."""
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / "aecf_ros"
    for rel in _package_files():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, dest)
    venv = Path(sys.prefix)
    result = subprocess.run(
        [str(venv / "bin" / "colcon"), "build", "--packages-select", "aecf_ros", "--cmake-args",
         f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=ws, env=_colcon_env(venv), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return ws


@pytest.fixture(scope="module")
def colcon_install(colcon_workspace) -> Path:
    return colcon_workspace / "install"


def test_colcon_test_quick_subset_passes_on_the_colcon_built_copy(colcon_workspace):
    """`colcon test` + `colcon test-result --all`, as a ROS user runs them (README), on the colcon-built
    copy: the `quick` CTest tests (test_import_layout, test_messages: the install-space layout and
    the messages over DDS between processes) run from the copy against its install space and pass.
    The whole suite this way: docs/ROBOT_CHECKS.md (by hand; ~10 minutes)."""
    venv = Path(sys.prefix)
    env = _colcon_env(venv)
    tested = subprocess.run(
        [str(venv / "bin" / "colcon"), "test", "--packages-select", "aecf_ros", "--ctest-args", "-L", "quick"],
        cwd=colcon_workspace, env=env, capture_output=True, text=True, timeout=600)
    results = colcon_workspace / "build" / "aecf_ros" / "test_results" / "aecf_ros"
    logs = "\n".join(p.read_text()[-3000:] for p in (colcon_workspace / "build" / "aecf_ros" / "ament_cmake_pytest")
                     .glob("*.txt")) if tested.returncode else ""
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:] + logs
    summary = subprocess.run([str(venv / "bin" / "colcon"), "test-result", "--all"], cwd=colcon_workspace,
                             env=env, capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    # only the quick files ran, each in its own pytest process with its own result file
    assert sorted(p.name for p in results.glob("*.xunit.xml")) == [
        "test_import_layout.xunit.xml", "test_messages.xunit.xml"], summary.stdout
    import re

    n, errors, failures = map(int, re.search(r"Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?",
                                             summary.stdout).groups())
    assert (errors, failures) == (0, 0), summary.stdout
    assert n >= 2 + 6, summary.stdout  # 2 CTest tests + the pytest tests in the two files
    assert ", 0 skipped" in summary.stdout, summary.stdout


def test_colcon_install_space_has_nodes_launch_config_and_index(colcon_install):
    prefix = colcon_install / "aecf_ros"
    for name in NODE_EXECUTABLES:
        exe = prefix / "lib" / "aecf_ros" / name
        assert exe.is_file(), f"missing node executable {exe}"
        assert os.access(exe, os.X_OK), f"{exe} is not executable"
    share = prefix / "share" / "aecf_ros"
    assert (share / "launch" / "aecf.launch.py").is_file()
    assert (share / "config" / "aecf.yaml").is_file()
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "aecf_ros").is_file()
    assert (share / "msg" / "FusedPrediction.msg").is_file()


def test_colcon_generated_messages_import_from_install_space(colcon_install, tmp_path):
    prefix = colcon_install / "aecf_ros"
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    code = (
        "import aecf_ros, aecf_ros.msg as m, aecf_ros.core.fusion\n"
        "print(m.__file__); print(aecf_ros.core.fusion.__file__)\n"
        "p = m.FusedPrediction(scores=[0.5], modalities=['lidar'], modality_present=[True])\n"
        "e = m.ModalityEmbedding(modality='camera', embedding=[1.0, 2.0], encoder_id='x')\n"
        "assert list(p.modality_present) == [True] and e.modality == 'camera'\n"
    )
    env = ros_env(PYTHONPATH=str(site))
    env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"
    # Run outside the repo so the source tree cannot shadow the install space.
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    msg_file, core_file = result.stdout.split()[:2]
    assert msg_file.startswith(str(site)), msg_file
    assert core_file.startswith(str(site)), core_file


def test_colcon_installed_cli_runs_with_the_build_interpreter(colcon_install, tmp_path):
    """Installed scripts carry the build's Python as shebang (as setuptools entry points do)."""
    prefix = colcon_install / "aecf_ros"
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    cli = prefix / "bin" / "aecf-ros"
    for script in [cli] + [prefix / "lib" / "aecf_ros" / n for n in NODE_EXECUTABLES]:
        assert script.read_text().splitlines()[0] == f"#!{sys.executable}", script
    env = ros_env(PYTHONPATH=str(site))
    env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"
    result = subprocess.run([str(cli), "--help"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("train", "evaluate", "run", "demo", "make-bag", "replay", "evaluate-bag"):
        assert command in result.stdout


def test_installed_train_evaluate_sweep_find_their_configs_outside_the_repo(colcon_install, tmp_path):
    """`aecf-ros train / evaluate / sweep` from an install space, run from another folder, read the
    configs installed in share/aecf_ros/config (ament index), not a config/ next to the module."""
    prefix = colcon_install / "aecf_ros"
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env = ros_env(PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{prefix}{os.pathsep}{sys.prefix}")
    env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"
    share = prefix / "share" / "aecf_ros" / "config"
    code = ("from aecf_ros.train.config import DEFAULT_CONFIG_PATH, load_config\n"
            "from aecf_ros.train.sweep import DEFAULT_SWEEP_PATH\n"
            "from aecf_ros.nodes.runner import default_params_file\n"
            "load_config(DEFAULT_CONFIG_PATH)\n"
            "print(DEFAULT_CONFIG_PATH, DEFAULT_SWEEP_PATH, default_params_file())\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(share / "train.yaml"), str(share / "sweep.yaml"), str(share / "aecf.yaml")]
    cli = prefix / "bin" / "aecf-ros"
    for command in ("train", "sweep"):
        out = subprocess.run([str(cli), command, "--help"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    # evaluate reads the training config for its scenarios: a tiny run proves it is found
    from aecf_ros.model import build_model, save_model

    model = save_model(build_model(), tmp_path / "m.pt")
    out = subprocess.run([str(cli), "evaluate", "--model", str(model), "--n-test", "8",
                          "--json", str(tmp_path / "ev.json")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "config not found" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "ev.json").is_file()
