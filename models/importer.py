"""``prognos model import``: an ONNX model trained elsewhere, as a Prognos model folder.

Data scientists export from scikit-learn (``skl2onnx``, with ``options={"zipmap": False}``),
Keras/TensorFlow (``tf2onnx``) or PyTorch (``torch.onnx``). The model must read the same
features as a reference model (``--like``): its normalised windows, in one of three
layouts, and give a risk in [0, 1] in one of three forms:

=========================  ==================================================
input (float32)            how the stream's ``[N, K, F]`` windows reach it
=========================  ==================================================
``[N, K, F]``              as they are
``[N, K*F]``               flattened, window by window (``x.reshape(N, -1)``)
``[N, F]``                 the last window only
=========================  ==================================================

=========================  ==================================================
output (float)             the risk
=========================  ==================================================
``[N]`` or ``[N, 1]``      as it is
``[N, 2]``                 class probabilities: the second column
=========================  ==================================================

The imported file wraps the model in a graph with the Prognos input and output
(``windows`` -> ``risk``), carries the reference's metadata (features, normalisation,
window, sequence length; its own version, threshold and producer), and the folder gets
a manifest with its checksum, a parity fixture (the reference's parity inputs and the
imported model's risks for them), and the reference's ``drift.json`` and
``catalogue.toml``. It can then be evaluated, backtested and promoted like a trained one.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelError
from models.metadata import MODEL_NAME, write_manifest
from models.scorer import Scorer

__all__ = ["ImportError_", "import_onnx"]

_FLOAT = 1  # onnx.TensorProto.FLOAT


class ImportError_(ModelError):
    """The file cannot be imported; the message says why and what to do."""


def _dims(value_info: Any) -> list[int | str | None]:
    t = value_info.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def import_onnx(
    source: Path,
    like: Path,
    out: Path,
    version: str,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Wrap ``source`` as a model folder ``out`` reading what ``like`` reads (see the module).

    Returns:
        A summary: layout, output form, producer, checksum, parity range.

    Raises:
        ImportError_: not an ONNX file, an input or output it cannot map, risks outside
            [0, 1] or NaN on the parity inputs, ``out`` not empty.
    """
    try:
        import onnx
        from onnx import compose, helper, numpy_helper
    except ModuleNotFoundError as exc:
        raise ImportError_(
            "importing needs the onnx package: pip install 'prognos[train]'"
        ) from exc

    reference = Scorer.load(like)
    meta = reference.metadata
    k, f = meta.input_shape
    if out.exists() and any(out.iterdir()):
        raise ImportError_(f"{out} is not empty: give --out a new folder")
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ImportError_(f"{source} is not a readable ONNX model: {exc}") from exc
    model = compose.add_prefix(model, "m_")
    graph = model.graph
    initialised = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised]
    if len(inputs) != 1:
        raise ImportError_(
            f"{source} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); it needs "
            "one: the window features"
        )
    src_in = inputs[0]
    if src_in.type.tensor_type.elem_type != _FLOAT:
        raise ImportError_(
            f"{source}: input {src_in.name[2:]} is not float32; export it with a float input "
            "(skl2onnx: FloatTensorType)"
        )
    dims = _dims(src_in)
    pre: list[Any] = []
    extra_init: list[Any] = []
    if len(dims) == 3 and dims[1:] == [k, f]:
        layout = "[N, K, F]"
        pre.append(helper.make_node("Identity", ["windows"], [src_in.name]))
    elif len(dims) == 2 and dims[1] == k * f:
        layout = "[N, K*F]"
        extra_init.append(numpy_helper.from_array(np.array([-1, k * f], np.int64), "flat_shape"))
        pre.append(helper.make_node("Reshape", ["windows", "flat_shape"], [src_in.name]))
    elif len(dims) == 2 and dims[1] == f:
        layout = "[N, F] (the last window)"
        extra_init.append(numpy_helper.from_array(np.array(k - 1, np.int64), "last_index"))
        pre.append(helper.make_node("Gather", ["windows", "last_index"], [src_in.name], axis=1))
    else:
        raise ImportError_(
            f"{source}: input shape {dims}; the reference reads K={k} windows of F={f} "
            f"features: give [N, {k}, {f}], [N, {k * f}] or [N, {f}]"
        )
    post: list[Any] = []
    chosen = None
    for out_info in graph.output:
        if not out_info.type.HasField("tensor_type"):
            continue  # skl2onnx's ZipMap (a sequence of maps)
        if out_info.type.tensor_type.elem_type not in (_FLOAT, 11):  # float, double
            continue
        shape = _dims(out_info)
        if len(shape) == 2 and shape[1] == 2:
            chosen = ("class probabilities [N, 2]: the second column", out_info)
            extra_init.append(numpy_helper.from_array(np.array(1, np.int64), "positive"))
            post.append(helper.make_node("Gather", [out_info.name, "positive"], ["risk64"], axis=1))
            break
        if (len(shape) == 2 and shape[1] == 1) or len(shape) == 1:
            chosen = ("risk [N]", out_info)
            extra_init.append(numpy_helper.from_array(np.array([-1], np.int64), "risk_shape"))
            post.append(helper.make_node("Reshape", [out_info.name, "risk_shape"], ["risk64"]))
            break
    if chosen is None:
        raise ImportError_(
            f"{source}: no float output of shape [N], [N, 1] or [N, 2] among "
            f"{[o.name[2:] for o in graph.output]}; for scikit-learn export with "
            "options={'zipmap': False}"
        )
    post.append(helper.make_node("Cast", ["risk64"], [meta.output_name], to=_FLOAT))
    wrapped = helper.make_graph(
        [*pre, *graph.node, *post],
        "prognos_imported",
        [helper.make_tensor_value_info(meta.input_name, _FLOAT, ["batch", k, f])],
        [helper.make_tensor_value_info(meta.output_name, _FLOAT, ["batch"])],
        [*graph.initializer, *extra_init],
    )
    result = helper.make_model(wrapped, opset_imports=list(model.opset_import))
    result.ir_version = model.ir_version
    producer = f"{model.producer_name or 'unknown'} {model.producer_version or ''}".strip()
    new_meta = replace(
        meta,
        model_version=version,
        threshold=float(meta.threshold if threshold is None else threshold),
        arch=f"imported ({producer})",
        extra={**dict(meta.extra), "imported_from": source.name},
    )
    for key, value in new_meta.to_props().items():
        result.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    try:
        onnx.checker.check_model(result)
    except onnx.checker.ValidationError as exc:
        raise ImportError_(f"{source}: the wrapped model does not validate: {exc}") from exc
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(result, str(out / MODEL_NAME))
    manifest = write_manifest(
        out, new_meta, created=datetime.now(UTC).isoformat(timespec="seconds")
    )
    for name in ("drift.json", "catalogue.toml"):
        if (Path(like) / name).is_file():
            shutil.copy2(Path(like) / name, out / name)
    # Loaded as the stream job loads it (checksum, input and output), then the parity fixture.
    imported = Scorer.load(out)
    parity = Path(like) / "parity.npz"
    if parity.is_file():
        with np.load(parity) as data:
            x = data["x"].astype(np.float32)
    else:
        x = np.random.default_rng(0).standard_normal((64, k, f)).astype(np.float32)
    try:
        y = imported.score(x)
    except Exception as exc:
        shutil.rmtree(out)
        raise ImportError_(f"{source}: ONNX Runtime cannot run the wrapped model: {exc}") from exc
    if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1:
        shutil.rmtree(out)
        raise ImportError_(
            f"{source}: risks on the reference's parity inputs range {float(np.nanmin(y)):.3g} "
            f"to {float(np.nanmax(y)):.3g} (or NaN); a risk is a probability in [0, 1]"
        )
    np.savez_compressed(out / "parity.npz", x=x, y=y)
    return {
        "layout": layout,
        "output": chosen[0],
        "producer": producer,
        "sha256": manifest["sha256"],
        "risk_range": [round(float(y.min()), 4), round(float(y.max()), 4)],
    }
