"""ROS 2 parameter files (``node: ros__parameters: ...``) read by rcl's rules, without ROS.

Offline tools (``aecf-ros evaluate-bag``) must see the values a node started with
``--params-file`` sees, on every distro (rclpy's ``parameter_dict_from_yaml_file`` is not in
Humble). The rules follow ``rcl_yaml_param_parser`` (``parse.c: get_value``) and rcl's node-name
matching:

* a plain (unquoted) scalar is a bool if it is one of ``y Y yes Yes YES true True TRUE on On ON``
  (false: ``n N no No NO false False FALSE off Off OFF``), else an integer if ``strtoll(s, 0)``
  reads all of it (``0x10`` hex, ``010`` octal), else a double if ``strtod`` does (``.inf``,
  ``.nan``, ``1e3``), else a string; a quoted scalar is always a string;
* a sequence is an array of one type;
* nested maps flatten with ``.`` (``timeout_s: {text: 3}`` -> ``timeout_s.text``);
* a section applies when its key matches the node's fully qualified name (``fusion_node``,
  ``/robot1/fusion_node``, ``/**``, ``/**/fusion_node``, ``/*/fusion_node``); sections apply in
  file order, a later one wins.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

_TRUE = {"Y", "y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_FALSE = {"N", "n", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
_SPECIAL_FLOATS = {f"{sign}.{word}": float(("-" if sign == "-" else "") + "inf") if word.lower() == "inf"
                   else math.nan for sign in ("", "+", "-") for word in ("inf", "Inf", "INF", "nan", "NaN", "NAN")
                   if not (sign and word.lower() == "nan")}
_C_INT = re.compile(r"\s*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_C_FLOAT = re.compile(r"\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf(inity)?|nan)", re.IGNORECASE)


class ParamsFileError(ValueError):
    """The file cannot be read, or a value is not one rcl accepts."""


def scalar_value(text: str, quoted: bool) -> Any:
    """One YAML scalar as rcl types it (see the module docstring)."""
    if quoted:
        return text
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    m = _C_INT.fullmatch(text)
    if m and text.strip():
        body = text.strip()
        sign = -1 if body.startswith("-") else 1
        digits = body.lstrip("+-")
        base = 16 if digits[:2].lower() == "0x" else 8 if digits.startswith("0") and len(digits) > 1 else 10
        return sign * int(digits, base)
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if _C_FLOAT.fullmatch(text):
        return float(text)
    return text


def _value(node) -> Any:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        return scalar_value(node.value, node.style in ("'", '"'))
    if isinstance(node, yaml.SequenceNode):
        items = [_value(n) for n in node.value]
        kinds = {type(v) for v in items}
        if len(kinds) > 1:
            raise ParamsFileError(f"line {node.start_mark.line + 1}: array mixes types "
                                  f"{sorted(k.__name__ for k in kinds)} (rcl needs one type)")
        return items
    raise ParamsFileError(f"line {node.start_mark.line + 1}: unexpected {node.id} value")


def _flatten(node, prefix: str, out: dict) -> None:
    import yaml

    for key, value in node.value:
        name = prefix + str(key.value)
        if isinstance(value, yaml.MappingNode):
            _flatten(value, name + ".", out)
        else:
            out[name] = _value(value)


def node_name_matches(pattern: str, fully_qualified_name: str) -> bool:
    """rcl's section-key rule: ``*`` is one name token, ``**`` any number of them."""
    tokens = [t for t in pattern.split("/") if t]
    regex = "".join("(/[^/]+)*" if t == "**" else "/[^/]+" if t == "*" else "/" + re.escape(t) for t in tokens)
    return re.fullmatch(regex, fully_qualified_name) is not None


def read_params_file(path: str | Path, fully_qualified_name: str) -> dict[str, Any]:
    """Flat ``{parameter: value}`` that node ``fully_qualified_name`` (``/fusion_node``,
    ``/robot1/fusion_node``) gets from ``path``; raises :class:`ParamsFileError`."""
    import yaml

    try:
        root = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsFileError(f"cannot read params file {path}: {exc}") from None
    values: dict[str, Any] = {}
    if root is None:
        return values
    if not isinstance(root, yaml.MappingNode):
        raise ParamsFileError(f"{path}: expected `node_name: ros__parameters: ...` at the top")
    fqn = fully_qualified_name if fully_qualified_name.startswith("/") else "/" + fully_qualified_name
    try:
        _collect(root, "", fqn, values)
    except ParamsFileError as exc:
        raise ParamsFileError(f"{path}: {exc}") from None
    return values


def _collect(node, namespace: str, fqn: str, values: dict) -> None:
    """Walk ``ns: node: ros__parameters:`` nesting (rcl allows namespaces as nested keys)."""
    import yaml

    for key, body in node.value:
        name = f"{namespace}/{key.value.strip('/')}"
        if not isinstance(body, yaml.MappingNode):
            raise ParamsFileError(f"line {key.start_mark.line + 1}: {key.value!r} is not a map")
        params = [v for k, v in body.value if k.value == "ros__parameters"]
        if params:
            if node_name_matches(name, fqn) and isinstance(params[0], yaml.MappingNode):
                _flatten(params[0], "", values)
        else:
            _collect(body, name, fqn, values)


def coerce_to_declared(values: dict[str, Any], defaults: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Values for declared parameters only, typed like the node declares them: an integer for a
    double parameter is a double (as the nodes accept it); any other type mismatch raises."""
    out = {}
    for name, value in values.items():
        if name not in defaults:
            continue
        default = defaults[name]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default):
            raise ParamsFileError(f"{where}{name}: {value!r} is {type(value).__name__}, the parameter is "
                                  f"{type(default).__name__}")
        out[name] = value
    return out
