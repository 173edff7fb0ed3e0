"""The OpenVINO backend: the networks converted once to OpenVINO graphs (cached, see
`graph_cache`), compiled for the CPU at the restorer's precision and run on numpy arrays.

Precision: "fp32" compiles with INFERENCE_PRECISION_HINT f32 (which must be said: on CPUs with
AMX, OpenVINO's own default is bf16), "bf16" with bf16. The converted graph itself is fp32 with
dynamic height and width whatever the precision and shape policy, so one cache entry serves
them all: "dynamic" compiles it once for every size, "static" once per padded input size (an
image of tiles needs one or two); OpenVINO keeps what it compiled in the cache's `compiled/`
folder (`compiled_cache`), so a later run reads it back instead (a folder it cannot write to
only means compiling again: tested). torch is imported only to convert a network that
neither the models' shipped graphs nor the cache hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import LAYOUT_FILE, GraphLayout, GraphSpec, torch_installed
from .compiled_cache import compiled_cache_folder
from .graph_cache import CacheEntry, GraphCache, find_shipped

CONVERTER_MODULE = "openvino.tools.ovc"
"""OpenVINO's model converter, which `import openvino` imports too (its package __init__, in a
try/except ImportError) although running graphs never needs it: only `convert` does, and it
imports it itself."""


def _import_runtime() -> Any:
    """`import openvino` without its model converter: a None entry in sys.modules makes the
    package's own import of the converter fail (it catches that), and is taken out again so
    that `convert` can import the converter later. Measured in benchmarks/bench_startup.py."""
    import sys

    if "openvino" in sys.modules or CONVERTER_MODULE in sys.modules:
        import openvino
        return openvino
    sys.modules[CONVERTER_MODULE] = None  # type: ignore[assignment]
    try:
        import openvino
    finally:
        if CONVERTER_MODULE in sys.modules and sys.modules[CONVERTER_MODULE] is None:
            del sys.modules[CONVERTER_MODULE]
    return openvino


ov = _import_runtime()

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
"""The restorers' resolved precisions as OpenVINO's INFERENCE_PRECISION_HINT."""
SHAPE_POLICIES = ("dynamic", "static")
DEFAULT_SHAPE_POLICY = "static"
"""Measured (benchmarks/bench_backends.py, tiny denoiser with adapters, fp32, 1 thread on a
loaded machine): one pass at 512 px 1.98 s compiled for the size against 3.08 s with dynamic
sizes (1.56x), at 256 px 277 against 423 ms. A tiled image needs one or two sizes."""
STATIC_SHAPES_KEPT = 4
"""Compiled sizes a network keeps (most recent first): tiles, edge tiles, a preview."""
GRAPH_FILE = "model.xml"


def runtime_version() -> str:
    return ov.get_version()


def padded_size(height: int, width: int, multiple: int, margin: int) -> tuple[int, int]:
    """The size `pad_images` pads a height x width image to."""
    return (-(-(height + 2 * margin) // multiple) * multiple,
            -(-(width + 2 * margin) // multiple) * multiple)


def pad_images(x: np.ndarray, multiple: int, margin: int
               ) -> tuple[np.ndarray, tuple[slice, slice]]:
    """numpy twin of `dtpm_core.networks.layers.pad_with_context`: (1, C, H, W) reflect-padded by
    `margin` (replicated when the image is too small to reflect), then edge-padded on the
    bottom/right to a multiple (`padded_size`); returns the padded array and the slices of the
    original."""
    h, w = x.shape[-2:]
    if margin > 0:
        mode = "reflect" if min(h, w) > margin else "edge"
        x = np.pad(x, ((0, 0), (0, 0), (margin, margin), (margin, margin)), mode=mode)
    target_h, target_w = padded_size(h, w, multiple, margin)
    pad_h, pad_w = target_h - x.shape[-2], target_w - x.shape[-1]
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
    return x, (slice(margin, margin + h), slice(margin, margin + w))


def convert(spec: GraphSpec, folder: Path) -> None:
    """Trace `spec`'s network with its example inputs and save the fp32 graph in `folder`,
    with dynamic height and width on the image inputs, and its `GraphLayout` beside it.
    Weights whose every value is an fp16 value (a file stored in fp16) are saved in fp16
    (`fp16_where_exact`): half the size, nothing lost."""
    import torch
    from openvino.tools.ovc import convert_model

    module, example, layout = spec.build()
    with torch.no_grad():
        # traced here without torch's re-run check (seconds; the tests compare the outputs)
        traced = torch.jit.trace(module, example, check_trace=False)
        model = convert_model(traced, example_input=example)
    shapes = {}
    for i, (port, name, x) in enumerate(zip(model.inputs, layout.inputs, example, strict=True)):
        port.get_tensor().set_names({name})
        shapes[name] = ov.PartialShape([1, int(x.shape[1]), -1, -1] if i < layout.images
                                       else list(x.shape))
    model.reshape(shapes)
    ov.save_model(fp16_where_exact(model), folder / GRAPH_FILE, compress_to_fp16=False)
    (folder / LAYOUT_FILE).write_text(layout.to_json(), encoding="utf-8")


FP16_MIN_ELEMENTS = 64
"""Constants at least this large are weights worth storing in fp16; the small ones (scalars,
epsilons, shapes) stay as they are."""


def fp16_where_exact(model: ov.Model) -> ov.Model:
    """`model` with each fp32 weight constant whose values are all exact fp16 values stored
    as fp16 followed by a Convert to fp32, in place: lossless by construction, unlike
    `save_model(compress_to_fp16=True)`, which also rounds every other constant (epsilons,
    scale factors: measured 2.5e-4 off torch after four DDIM steps)."""
    from openvino import opset13

    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or op.get_element_type() != ov.Type.f32:
            continue
        data = op.get_data()
        if data.size < FP16_MIN_ELEMENTS:
            continue
        half = data.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), data):
            continue
        stored = opset13.convert(opset13.constant(half), ov.Type.f32)
        for target in op.output(0).get_target_inputs():
            target.replace_source_output(stored.output(0))
    model.validate_nodes_and_infer_types()
    return model


class OpenVINONetwork:
    """One compiled network: call it with its inputs by name ((1, C, h, w) images as float32
    arrays, unpadded); returns the output as a new float32 array. `compile_ahead` compiles it
    for an image size in the background, before the image is there."""

    def __init__(self, core: ov.Core, graph: Path, role: str, layout: GraphLayout,
                 config: dict[str, Any], shape_policy: str,
                 background: Callable[[], ThreadPoolExecutor] | None = None) -> None:
        self.role, self.layout, self._core, self._config = role, layout, core, config
        self._model = core.read_model(graph)
        self._static = shape_policy == "static"
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._ahead: dict[tuple[int, ...], Future] = {}  # compiling in the background
        self._background = background
        if not self._static:
            self._compiled[()] = core.compile_model(self._model, "CPU", config) \
                .create_infer_request()

    def _compile(self, model: ov.Model, shapes: list[list[int]]) -> Any:
        """An infer request of `model` (a clone: reshaped here) for the inputs' `shapes`."""
        model.reshape({port.get_any_name(): ov.PartialShape(shape)
                       for port, shape in zip(model.inputs, shapes, strict=True)})
        return self._core.compile_model(model, "CPU", self._config).create_infer_request()

    def compile_ahead(self, sizes: list[tuple[int, int]]) -> int:
        """Start compiling for (unpadded) images of these (height, width) sizes in a background
        thread, where shapes are compiled one by one ("static"); a later call with such images
        waits for that compile instead of compiling. OpenVINO lets Python run meanwhile
        (reading the photo, say). What an earlier call started and no image used is dropped
        (another photo's sizes: each compiled size holds its buffers). Returns how many
        compiles started (sizes compiled already need none)."""
        if not self._static or self._background is None:
            return 0
        padded = [padded_size(h, w, self.layout.multiple, self.layout.margin) for h, w in sizes]
        for size in [size for size in self._ahead if size not in padded]:
            self._ahead.pop(size).cancel()  # a compile under way finishes, unreferenced
        started = 0
        for size in dict.fromkeys(padded):
            if size in self._compiled or size in self._ahead or \
                    len(self._ahead) >= STATIC_SHAPES_KEPT:
                continue
            model = self._model.clone()
            shapes = []
            for i, port in enumerate(model.inputs):
                shape = port.get_partial_shape()
                if i < self.layout.images:  # (1, C, H, W), H and W dynamic in the graph
                    shapes.append([1, shape[1].get_length(), *size])
                else:  # static in the graph (a time step, a semantic code)
                    shapes.append([dim.get_length() for dim in shape])
            self._ahead[size] = self._background().submit(self._compile, model, shapes)
            started += 1
        return started

    def _request(self, arrays: list[np.ndarray]) -> Any:
        if not self._static:
            return self._compiled[()]
        shape = tuple(arrays[0].shape[-2:])
        if shape in self._compiled:
            self._compiled[shape] = self._compiled.pop(shape)  # the most recent: kept longest
            return self._compiled[shape]
        request = None
        ahead = self._ahead.pop(shape, None)
        if ahead is not None:
            try:
                request = ahead.result()
            except Exception:  # noqa: BLE001 - compiled again below, where it raises if it must
                request = None
        if request is None:
            request = self._compile(self._model.clone(), [list(a.shape) for a in arrays])
        if len(self._compiled) >= STATIC_SHAPES_KEPT:
            del self._compiled[next(iter(self._compiled))]
        self._compiled[shape] = request
        return request

    def _infer(self, inputs: dict[str, Any]) -> tuple[Any, tuple[slice, slice] | None]:
        """Run the graph on the named inputs (images padded as the layout says); the request,
        whose output tensors hold the results, and the crop of the unpadded image."""
        layout = self.layout
        missing = [name for name in layout.inputs if inputs.get(name) is None]
        if missing:
            raise ConfigError(f"the {self.role} graph needs {', '.join(missing)}")
        arrays = [np.ascontiguousarray(inputs[name]) for name in layout.inputs]
        crop = None
        for i in range(layout.images):
            arrays[i], crop = pad_images(arrays[i].astype(np.float32, copy=False),
                                         layout.multiple, layout.margin)
        request = self._request(arrays)
        request.infer(arrays)
        return request, crop

    def __call__(self, **inputs: Any) -> np.ndarray:
        request, crop = self._infer(inputs)
        out = request.get_output_tensor(0).data  # (1, 3, H', W'), the request's own buffer
        return np.array(out[(..., *crop)], dtype=np.float32)

    def outputs(self, **inputs: Any) -> list[np.ndarray]:
        """Every output of a graph whose images are not padded (a feature network: its
        outputs are smaller than its input, so there is nothing to crop), as new arrays."""
        if self.layout.margin or self.layout.multiple != 1:
            raise ConfigError(f"the {self.role} graph pads its input: call it for its output")
        request, _ = self._infer(inputs)
        return [np.array(request.get_output_tensor(i).data, dtype=np.float32)
                for i in range(len(request.model_outputs))]


class OpenVINOSession:
    """Compiled networks of one restorer: converts (through the cache) and compiles each
    network once, at the restorer's precision and thread count."""

    def __init__(self, precision: str, threads: int, shape_policy: str = DEFAULT_SHAPE_POLICY,
                 cache: GraphCache | None = None) -> None:
        if precision not in PRECISION_HINTS:
            raise ConfigError(f"the OpenVINO backend runs fp32 or bf16, not {precision!r}; use "
                              "--precision fp32, bf16 or auto")
        if shape_policy not in SHAPE_POLICIES:
            raise ConfigError(f"unknown shape policy {shape_policy!r}; choose one of "
                              f"{SHAPE_POLICIES}")
        self.core = ov.Core()
        self.config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                       "INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY"}
        self.shape_policy = shape_policy
        self.cache = cache if cache is not None else GraphCache()
        self.compiled_folder = compiled_cache_folder(self.cache.root)
        if self.compiled_folder is not None:  # compiled once per size, read back after
            self.core.set_property({"CACHE_DIR": str(self.compiled_folder)})
        self._networks: dict[str, tuple[str, OpenVINONetwork]] = {}
        self._executor: ThreadPoolExecutor | None = None

    def _background(self) -> ThreadPoolExecutor:
        """The threads that compile ahead (`OpenVINONetwork.compile_ahead`), started on first
        use: two, so that DTPM's predictor and denoiser compile side by side."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2,
                                                thread_name_prefix="openvino-compile")
        return self._executor

    def network(self, spec: GraphSpec, on_convert: Callable[[GraphSpec], None] | None = None
                ) -> tuple[OpenVINONetwork, CacheEntry | None]:
        """The compiled network for `spec`, and the entry it came from when it was looked up
        now (None when this session had it compiled): a graph shipped beside the models,
        else the cache's (converted now where the cache has none). `on_convert(spec)` is
        called before a conversion (the slow part of a first use: seconds). An unusable
        shipped or cached graph is named in the entry's `problem`."""
        found = self._network(spec, on_convert, may_convert=True)
        assert found is not None
        return found

    def network_at_hand(self, spec: GraphSpec
                        ) -> tuple[OpenVINONetwork, CacheEntry | None] | None:
        """As `network`, where that needs no conversion (held, shipped whole or cached
        whole); None where it would convert."""
        return self._network(spec, None, may_convert=False)

    def _network(self, spec: GraphSpec, on_convert: Callable[[GraphSpec], None] | None,
                 may_convert: bool) -> tuple[OpenVINONetwork, CacheEntry | None] | None:
        name = json.dumps(spec.key, sort_keys=True)
        held = self._networks.get(spec.role)
        if held is not None and held[0] == name:
            return held[1], None
        entry, shipped_problem = find_shipped(spec.key, spec.shipped)
        if entry is None:
            def build(folder: Path) -> None:  # called only when the cache has no whole graph
                if not torch_installed():
                    raise ConfigError(_no_graph_message(spec, shipped_problem))
                if on_convert is not None:
                    on_convert(spec)
                convert(spec, folder)

            entry = self.cache.get(cache_key_of(spec), build) if may_convert \
                else self.cache.find(cache_key_of(spec))
            if entry is None:
                return None
            if shipped_problem:
                entry = CacheEntry(entry.folder, entry.converted,
                                   "; ".join(filter(None, (shipped_problem, entry.problem))))
        network = OpenVINONetwork(self.core, entry.folder / GRAPH_FILE, spec.role,
                                  entry.layout, self.config, self.shape_policy,
                                  self._background)
        self._networks[spec.role] = (name, network)  # one per role: switching tasks frees
        return network, entry


def cache_key_of(spec: GraphSpec) -> dict[str, Any]:
    """The cache's key of `spec`: the cache's graphs were converted on this machine, so they
    are keyed by this runtime's version too (the shipped ones are not)."""
    return {**spec.key, "runtime": f"openvino {runtime_version()}"}


def graph_at_hand(spec: GraphSpec, cache: GraphCache | None = None) -> bool:
    """Whether `spec` runs without converting anything: a whole graph is shipped or cached."""
    cache = cache if cache is not None else GraphCache()
    return find_shipped(spec.key, spec.shipped)[0] is not None or cache.has(cache_key_of(spec))


def _no_graph_message(spec: GraphSpec, shipped_problem: str) -> str:
    where = " or ".join(str(folder) for folder in spec.shipped) or "beside the model files"
    found = f" ({shipped_problem})" if shipped_problem else ""
    return (f"the {spec.role} network has no usable converted graph in {where}{found} or in "
            "the graph cache, and converting one needs PyTorch, which this installation "
            "leaves out: use model files that come with their graphs (`dtpm-train graphs "
            "--models FOLDER` writes them on a machine with PyTorch)")


def write_graphs(specs: list[GraphSpec], folder: Path,
                 on_convert: Callable[[GraphSpec], None] | None = None) -> list[CacheEntry]:
    """Convert `specs` into `folder` in the cache's layout, keyed without the runtime version:
    the graphs that ship beside the models (`GraphSpec.shipped`). An entry there that checks
    out is kept; a damaged or stale one is converted again."""
    cache = GraphCache(folder)
    entries = []
    for spec in specs:
        def build(target: Path, spec: GraphSpec = spec) -> None:
            if on_convert is not None:
                on_convert(spec)
            convert(spec, target)
        entries.append(cache.get(spec.key, build))
    return entries
