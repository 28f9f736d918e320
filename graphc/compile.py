"""``function()``: chains the stages (optimise, schedule, emit, compile) and nothing more."""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import numpy as np
import sympy

from graphc import env
from graphc.errors import DTypeError, InputError, ShapeError
from graphc.frontend import ops
from graphc.frontend.variables import storage
from graphc.interp import evaluate_nodes
from graphc.ir.graph import Graph, toposort
from graphc.ir.infer import broadcast_shapes
from graphc.ir.node import Node
from graphc.ir.printer import debugprint
from graphc.ir.ops import ELEMENTWISE, Op
from graphc.ir.shapes import RNG_STEP, dims_equal, evaluate, format_shape, size_of
from graphc.options import CompileOptions
from graphc.passes.pipeline import optimize

Outputs = Union[Node, Sequence[Node], None]
Updates = Union[Sequence[tuple[Any, Any]], Mapping[Any, Any], None]


def _resolve_updates(updates: Updates, graph_nodes: list[Node]) -> list[tuple[Node, Node]]:
    """Pairs (shared variable, new value); a shared variable may be named by its name."""
    if updates is None:
        return []
    pairs = list(updates.items()) if isinstance(updates, Mapping) else list(updates)
    shared_by_name = {n.name: n for n in graph_nodes if n.op is Op.SHARED}
    out = []
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise InputError(f"updates must be (shared variable, new value) pairs, got {pair!r}")
        target, value = pair
        if isinstance(target, str):
            if target not in shared_by_name:
                known = ", ".join(sorted(shared_by_name)) or "none"
                raise InputError(f"updates: no shared variable named {target!r} in this function "
                                 f"(shared variables it uses: {known})")
            target = shared_by_name[target]
        if not isinstance(target, Node) or target.op is not Op.SHARED:
            raise InputError(f"updates: {target!r} is not a shared variable")
        value = ops.as_tensor(value)
        if value.shape != target.shape and (len(value.shape) != len(target.shape) or not all(
                dims_equal(a, b) for a, b in zip(value.shape, target.shape))):
            raise ShapeError(f"updates: new value for {target.name!r} has shape {format_shape(value.shape)}, "
                             f"the variable has {format_shape(target.shape)}")
        out.append((target, ops.cast(value, target.dtype)))
    if len({id(t) for t, _ in out}) != len(out):
        raise InputError("updates: a shared variable is updated twice")
    return out


def _size_constraints(nodes: list[Node]) -> list[tuple[sympy.Expr, sympy.Expr, Node]]:
    """Pairs of symbolic sizes the graph assumes equal (checked at every call)."""
    pairs = []
    for n in nodes:
        groups: list[list] = []
        if n.op in ELEMENTWISE or n.op is Op.FUSED:
            ndim = len(broadcast_shapes(n.op, n.inputs)) if n.inputs else 0
            for axis in range(-ndim, 0):
                groups.append([i.shape[axis] for i in n.inputs if len(i.shape) >= -axis])
        elif n.op is Op.MATMUL:
            groups.append([n.inputs[0].shape[-1], n.inputs[1].shape[-2]])
        elif n.op is Op.RESHAPE:
            groups.append([size_of(n.shape), size_of(n.inputs[0].shape)])
        elif n.op is Op.SCAN:  # carries keep their shape; sequences have the loop's length
            body = n.attrs["body"]
            groups.append([n.attrs["length"]] + [x.shape[0] for x in n.inputs[len(body.carries):][:len(body.seqs)]])
            for c, new in zip(body.carries, body.new_carries):
                groups.extend([a, b] for a, b in zip(c.shape, new.shape))
            for x, p in zip(n.inputs, body.params):
                groups.extend([a, b] for a, b in zip(x.shape[-p.ndim:] if p.ndim else (), p.shape))
        for dims in groups:
            for d in dims[1:]:
                a = dims[0]
                if (not isinstance(a, int) or not isinstance(d, int)) and not dims_equal(a, d) \
                        and not (isinstance(a, int) and a == 1) and not (isinstance(d, int) and d == 1):
                    pairs.append((*_reduced(a, d), n))
    # each distinct pair is checked once, at every call (keep the first node, for the message)
    unique: dict[frozenset, tuple] = {}
    for a, b, n in pairs:
        unique.setdefault(frozenset((a, b)), (a, b, n))
    return list(unique.values())


def _reduced(a, b):
    """``10*x == 10*y`` is ``x == y``: a constraint between two scaled symbols is checked on
    the symbols (cheaper at every call, and one check instead of several)."""
    if not isinstance(a, int) and not isinstance(b, int):
        if a.is_Symbol and b.is_Symbol:  # two batch sizes: the usual case, and no cancel (5 ms)
            return a, b
        (ca, ra), (cb, rb) = a.as_coeff_Mul(), b.as_coeff_Mul()
        if ra.is_Symbol and rb.is_Symbol and ca == cb:
            return ra, rb
        num, den = sympy.fraction(sympy.cancel(a / b))
        if num.is_Symbol and den.is_Symbol:
            return num, den
    return a, b


class Function:
    """A compiled graph: call it with arrays for its inputs; it returns its outputs and applies
    its updates to shared variables in place.

    ``fn.graph`` is the optimised graph it runs; ``fn.llvm_ir`` the LLVM IR of its native code
    (None in reference mode).
    """

    def __init__(self, inputs: Sequence[Node], outputs: Outputs, updates: Updates = None,
                 mode: str = "native", options: CompileOptions | None = None, name: str = "fn"):
        if mode not in ("native", "reference"):
            raise InputError(f'mode must be "native" or "reference", got {mode!r}')
        self.options = options or CompileOptions()
        self.mode = mode
        self.name = name
        self.inputs = list(inputs)
        for x in self.inputs:
            if not isinstance(x, Node) or x.op is not Op.PLACEHOLDER:
                raise InputError(f"function inputs must be placeholders, got {x!r}")
        self._single = isinstance(outputs, Node)
        for pair in (updates.items() if isinstance(updates, Mapping) else updates or []):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise InputError(f"updates must be (shared variable, new value) pairs, got {pair!r}")
        outs = [] if outputs is None else ([outputs] if self._single else [ops.as_tensor(o) for o in outputs])
        raw_nodes = toposort(outs + [v for _, v in (updates.items() if isinstance(updates, Mapping) else updates or [])
                                     if isinstance(v, Node)])
        self.updates = _resolve_updates(updates, raw_nodes + [t for t, _ in (
            updates.items() if isinstance(updates, Mapping) else updates or []) if isinstance(t, Node)])
        all_outs = outs + [v for _, v in self.updates]
        self._n_outputs = len(outs)
        self._check_inputs_known(all_outs)
        if mode == "native" and self.options.target == "cuda":
            from graphc.passes.expand import expand_windows  # no im2col kernel on CUDA yet
            all_outs = expand_windows(all_outs)
        with env.stage_timer(name, "optimize"):
            optimized = optimize(all_outs, self.options.opt_level)
        self.graph = Graph(tuple(self.inputs), tuple(optimized))
        env.dump(name, "graph.txt", debugprint(all_outs, file=False) + "\n\noptimised:\n"
                 + debugprint(optimized, file=False))
        nodes = self.graph.nodes()
        self.shared = [n for n in nodes if n.op is Op.SHARED]
        self._bind = [(k, j, d) for k, x in enumerate(self.inputs) for j, d in enumerate(x.shape)]
        self._np_dtypes = [np.dtype(x.dtype) for x in self.inputs]
        self._n_inputs = len(self.inputs)
        self._ndims = [len(x.shape) for x in self.inputs]
        self._constraints = _size_constraints(nodes)
        self._calls = 0
        self._sizes_by_shape: dict[tuple, tuple] = {}
        self._native = None
        self.ptx: str | None = None  # PTX of the CUDA kernels (target="cuda" only)
        if mode == "native" and self.options.target == "cuda":
            # --- CUDA hook (graphc/lower/nvvm_executable.py): run(arrays, env), the general call path
            from graphc.lower.nvvm_executable import CudaExecutable
            self._native = CudaExecutable(self.graph, self.inputs, self.shared,
                                          [t for t, _ in self.updates], self.options, name)
            self.ptx = self._native.ptx
        elif mode == "native":
            from graphc.lower.executable import NativeExecutable
            options = self.options
            if options.cache_dir is None and env.default_cache_dir():
                options = options.replace(cache_dir=env.default_cache_dir())
            if env.profile_enabled() and not options.profile:
                options = options.replace(profile=True)
            with env.stage_timer(name, "lower+compile"):
                self._native = NativeExecutable(self.graph, self.inputs, self.shared,
                                                [t for t, _ in self.updates], options, name)
            if env.dump_enabled():
                env.dump(name, "ll", self.llvm_ir)
        # the CPU executable's fast call (sizes cached per input shape); CUDA and reference
        # mode take the general path
        self._run_sizes = getattr(self._native, "run_sizes", None)

    @property
    def llvm_ir(self) -> str | None:
        """The LLVM IR of the native code (None in reference mode)."""
        return None if self._native is None else self._native.llvm_ir

    def profile(self, reset: bool = False, file=None) -> list[tuple[str, int, float]]:
        """Time spent in each kernel of the native code since it was compiled (or the last
        ``reset``): ``(kernel, calls, seconds)`` rows, slowest first, also printed to ``file``
        when given. Needs ``CompileOptions(profile=True)`` or ``GRAPHC_PROFILE=1``."""
        if not hasattr(self._native, "profile"):
            raise InputError(f"{self.name}: only native CPU code can be profiled (mode={self.mode!r}, "
                             f"target={self.options.target!r})")
        rows = self._native.profile(reset)
        if file is not None:
            total = sum(r[2] for r in rows) or 1.0
            print(f"{'seconds':>10} {'%':>5} {'calls':>7}  kernel", file=file)
            for name, calls, seconds in rows:
                print(f"{seconds:10.6f} {100 * seconds / total:5.1f} {calls:7d}  {name}", file=file)
        return rows

    def _check_inputs_known(self, outs: list[Node]) -> None:
        given = set(map(id, self.inputs))
        bound = {s for x in self.inputs for d in x.shape if not isinstance(d, int) for s in d.free_symbols}
        for n in toposort(outs):
            if n.op is Op.PLACEHOLDER and id(n) not in given:
                where = f" (made at {n.origin})" if n.origin else ""
                raise InputError(f"the outputs depend on placeholder {n.name!r}{where}, which is not among "
                                 f"the function's inputs {[x.name for x in self.inputs]}")
            free = {s for d in n.shape if not isinstance(d, int) for s in d.free_symbols}
            if n.op in (Op.RANDOM, Op.DIM):
                expr = n.attrs.get("expr")
                if expr is not None and not isinstance(expr, int):
                    free |= expr.free_symbols
            missing = free - bound - {RNG_STEP}
            if missing:
                raise InputError(f"{n!r} has a size ({', '.join(map(str, missing))}) that no input of the "
                                 "function determines")

    # ------------------------------------------------------------------------- calling
    def _arrays(self, args: tuple, kwargs: dict) -> list[np.ndarray]:
        if kwargs:
            by_name = {x.name: i for i, x in enumerate(self.inputs)}
            args = list(args) + [None] * (len(self.inputs) - len(args))
            for k, v in kwargs.items():
                if k not in by_name:
                    raise InputError(f"{self.name}: unknown input {k!r}; inputs are {list(by_name)}")
                args[by_name[k]] = v
        if len(args) != len(self.inputs):
            self._wrong_inputs(args)
        arrays = []
        for x, a, want, ndim in zip(self.inputs, args, self._np_dtypes, self._ndims):
            # the common case first: a C-contiguous array of the right dtype and rank
            if type(a) is np.ndarray and a.dtype is want and a.ndim == ndim and a.flags.c_contiguous:
                arrays.append(a)
                continue
            if a is None:
                self._wrong_inputs(args)
            arr = np.asarray(a)
            if arr.dtype != want:  # another type, or the same in the other byte order
                if not np.can_cast(arr.dtype, want, "same_kind"):
                    raise DTypeError(f"{self.name}: input {x.name!r} expects {x.dtype}, got {arr.dtype} "
                                     f"(which cannot be converted without changing its kind)")
                arr = arr.astype(want)
            if arr.ndim != len(x.shape):
                raise ShapeError(f"{self.name}: input {x.name!r} expects rank {len(x.shape)} "
                                 f"{format_shape(_user_shape(x))}, got shape {arr.shape}")
            arrays.append(np.asarray(arr, order="C"))  # ascontiguousarray makes 0-d arrays 1-d
        return arrays

    def _wrong_inputs(self, args) -> None:
        raise InputError(f"{self.name}: expected {len(self.inputs)} inputs "
                         f"({', '.join(str(x.name) for x in self.inputs)}), got "
                         f"{len([a for a in args if a is not None])}")

    def _symbols(self, arrays: list[np.ndarray]) -> dict:
        env: dict = {}
        for k, j, d in self._bind:
            size = arrays[k].shape[j]
            x = self.inputs[k]
            if isinstance(d, int):
                if d != size:
                    raise ShapeError(f"{self.name}: input {x.name!r} expects shape {format_shape(_user_shape(x))}, "
                                     f"got {arrays[k].shape} (axis {j} should be {d})")
            elif d.is_Symbol:
                if env.setdefault(d, size) != size:
                    raise ShapeError(f"{self.name}: input {x.name!r} axis {j} is {size}, but the same size was "
                                     f"{env[d]} elsewhere")
        for a, b, node in self._constraints:
            va, vb = evaluate(a, env), evaluate(b, env)
            if va != vb:
                where = f" at {node.origin}" if node.origin else ""
                raise ShapeError(f"{self.name}: sizes do not match in {node.op.value}{where}: {va} vs {vb} "
                                 f"(input shapes {[tuple(a.shape) for a in arrays]})")
        env[RNG_STEP] = self._calls
        return env

    def __call__(self, *args, **kwargs):
        run_sizes = self._run_sizes
        if run_sizes is not None:
            sizes = None
            if not kwargs and len(args) == self._n_inputs:
                # The common call first: C-contiguous arrays of the right dtypes, in shapes seen
                # before (and so checked before: the rank is part of the shape).
                for a, want in zip(args, self._np_dtypes):
                    if type(a) is not np.ndarray or a.dtype is not want or not a.flags.c_contiguous:
                        break
                else:
                    arrays = args
                    sizes = self._sizes_by_shape.get(tuple([a.shape for a in args]))
            if sizes is None:
                # The sizes depend only on the input shapes: checked and bound once per shape.
                arrays = self._arrays(args, kwargs)
                key = tuple([a.shape for a in arrays])
                sizes = self._sizes_by_shape.get(key)
                if sizes is None:
                    sizes = self._native.sizes(self._symbols(arrays))
                    if len(self._sizes_by_shape) >= 64:
                        self._sizes_by_shape.clear()
                    self._sizes_by_shape[key] = sizes
            step = self._calls
            self._calls += 1
            outs = run_sizes(arrays, sizes, step)
            return outs[0] if self._single else outs
        arrays = self._arrays(args, kwargs)
        native = self._native
        env = self._symbols(arrays)
        self._calls += 1
        if native is not None:
            outs = native.run(arrays, env)
        else:
            feeds = dict(zip(self.inputs, arrays))
            feeds.update({s: storage(s).array for s in self.shared})
            values = evaluate_nodes(self.graph.outputs, feeds, env)
            outs = [np.array(v) for v in values[:self._n_outputs]]
            # copy first: a new value may be another shared variable's buffer (a swap), and all
            # updates must see the values from before the call
            new_values = [np.array(v) for v in values[self._n_outputs:]]
            for (target, _), v in zip(self.updates, new_values):
                st = storage(target)
                np.copyto(st.array, v)
                st.written_on_host()
        if self._single:
            return outs[0]
        return outs

    def run_steps(self, n_steps: int, *args):
        """Call the function ``n_steps`` times, call ``s`` on the ``s``-th of ``n_steps`` equal
        slices of every input's leading axis; returns each output stacked along a new leading
        axis of ``n_steps``. The updates are applied after every call, and random ops draw as
        in separate calls, so the results are those of the ``n_steps`` calls in turn. On the
        CPU the calls run in one native loop (no Python between them: what Keras'
        ``steps_per_execution`` uses); on CUDA their launches follow one another with one copy
        of each input and output; in reference mode they are made one by one."""
        n = int(n_steps)
        if n < 1:
            raise InputError(f"{self.name}: run_steps needs n_steps >= 1, got {n_steps!r}")
        arrays = self._arrays(args, {})
        for x, a in zip(self.inputs, arrays):
            if a.ndim == 0 or a.shape[0] % n:
                raise ShapeError(f"{self.name}: run_steps({n}) splits every input's leading axis into {n} equal "
                                 f"slices, but input {x.name!r} has shape {a.shape}")
        slices = [[a[s * (a.shape[0] // n):(s + 1) * (a.shape[0] // n)] for a in arrays] for s in range(n)]
        if hasattr(self._native, "run_steps_env") and n > 1:  # CUDA: the n calls' launches in a row
            env = self._symbols(slices[0])
            self._calls += n
            outs = self._native.run_steps_env(arrays, env, n)
            return outs[0] if self._single else outs
        if self._run_sizes is None or n == 1:
            results = [self(*part) for part in slices]
            if self._single:
                return np.stack(results)
            return [np.stack([r[i] for r in results]) for i in range(len(results[0]))]
        first = slices[0]
        key = tuple([a.shape for a in first])
        sizes = self._sizes_by_shape.get(key)
        if sizes is None:
            sizes = self._native.sizes(self._symbols(first))
        step = self._calls
        self._calls += n
        outs = self._native.run_steps(arrays, sizes, step, n)
        return outs[0] if self._single else outs


def _user_shape(x: Node) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in x.shape)


def function(inputs: Sequence[Node], outputs: Outputs = None, updates: Updates = None,
             mode: str = "native", options: CompileOptions | None = None, name: str = "function") -> Function:
    """Compile a graph into a callable.

    ``inputs`` are placeholders (passed positionally or by name); ``outputs`` one node or a
    list; ``updates`` (shared variable, new value) pairs applied in place after each call, all
    computed from the values before the call. ``mode="reference"`` runs the NumPy interpreter.
    """
    return Function(inputs, outputs, updates, mode=mode, options=options, name=name)
