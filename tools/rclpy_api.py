"""Write the public rclpy API of one ROS 2 distro as a sorted list, one name a line.

    python tools/rclpy_api.py --git /work/.mirror/ros2+rclpy/repo --ref humble > test/rclpy_api/humble.txt
    python tools/rclpy_api.py --git /work/.mirror/ros2+rclpy/repo --ref jazzy  > test/rclpy_api/jazzy.txt
    python tools/rclpy_api.py --dir .venv/lib/python3.11/site-packages > test/rclpy_api/kilted.txt

(kilted: the installed ``ros-rclpy`` 9.1.x wheel, which is built from rclpy's kilted sources; the
ros2/rclpy repository has no ``kilted`` branch.) Lines are

    rclpy.node                                         a module
    rclpy.node.Node                                    a top-level name of a module
    rclpy.node.Node.create_subscription(msg_type,topic,callback,qos_profile,*,callback_group,...)
                                                       a method (inherited ones included) + its arguments

``test/test_distro_api.py`` checks every rclpy module, name, method and keyword argument the
package uses against each list. Parsing only (``ast``): nothing is imported.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path


def _sources_from_git(git_dir: str, ref: str) -> dict[str, str]:
    names = subprocess.run(["git", "-C", git_dir, "ls-tree", "-r", "--name-only", ref, "rclpy/rclpy"],
                           check=True, capture_output=True, text=True).stdout.split()
    out = {}
    for name in names:
        if name.endswith(".py"):
            out[name[len("rclpy/"):]] = subprocess.run(["git", "-C", git_dir, "show", f"{ref}:{name}"], check=True,
                                                       capture_output=True, text=True).stdout
    return out


def _sources_from_dir(root: str) -> dict[str, str]:
    base = Path(root)
    return {str(p.relative_to(base)): p.read_text() for p in sorted((base / "rclpy").rglob("*.py"))}


def _module_name(path: str) -> str:
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _args(fn: ast.FunctionDef) -> str:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    elif a.kwonlyargs:
        names.append("*")
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return ",".join(names)


def api_lines(sources: dict[str, str]) -> list[str]:
    modules: dict[str, ast.Module] = {}
    for path, text in sources.items():
        try:
            modules[_module_name(path)] = ast.parse(text)
        except SyntaxError:
            continue
    classes: dict[str, tuple[list[str], dict[str, str]]] = {}  # simple name -> (bases, members)
    lines: set[str] = set()
    top: dict[str, dict[str, ast.AST]] = {}
    for mod, tree in modules.items():
        lines.add(mod)
        names: dict[str, ast.AST] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                names[node.name] = node
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        names[t.id] = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names[node.target.id] = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names[(alias.asname or alias.name).split(".")[0]] = node
        top[mod] = names
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                members = {}
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        members[item.name] = _args(item)
                    elif isinstance(item, ast.Assign):
                        for t in item.targets:
                            if isinstance(t, ast.Name):
                                members[t.id] = None
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        members[item.target.id] = None
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases]
                classes.setdefault(node.name, (bases, members))

    def all_members(cls: str, seen=()) -> dict[str, str]:
        if cls not in classes or cls in seen:
            return {}
        bases, own = classes[cls]
        out: dict[str, str] = {}
        for b in reversed(bases):
            out.update(all_members(b, seen + (cls,)))
        out.update(own)
        return out

    for mod, names in top.items():
        for name, node in names.items():
            if name.startswith("_"):
                continue
            lines.add(f"{mod}.{name}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines.add(f"{mod}.{name}({_args(node)})")
            if isinstance(node, ast.ClassDef):
                for member, args in all_members(name).items():
                    if member.startswith("_") and member != "__init__":
                        continue
                    lines.add(f"{mod}.{name}.{member}" + (f"({args})" if args is not None else ""))
    return sorted(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git", help="ros2/rclpy git dir")
    parser.add_argument("--ref", help="branch of --git (humble, jazzy, ...)")
    parser.add_argument("--dir", help="a folder holding an rclpy/ package (an installed wheel)")
    a = parser.parse_args(argv)
    sources = _sources_from_git(a.git, a.ref) if a.git else _sources_from_dir(a.dir)
    sys.stdout.write("".join(line + "\n" for line in api_lines(sources)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
