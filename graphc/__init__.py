"""graphc: a symbolic computation-graph compiler with a Keras-style API.

    import graphc as gc
    x = gc.placeholder((None, 3)); w = gc.shared(np.ones((3, 1), "float32"))
    f = gc.function([x], gc.ops.sum(x @ w))
"""
from graphc import frontend as _frontend  # noqa: F401  (installs Node operators)
from graphc.frontend import ops
from graphc.frontend.variables import constant, placeholder, shared
from graphc.frontend.scan import scan
from graphc.autodiff.grad import grad, hessian, jacobian
from graphc.compile import Function, function
from graphc.aot import export
from graphc.errors import (CompileError, DTypeError, GradientError, GraphcError, InputError,
                           ModelFileError, ShapeError)
from graphc.ir.node import Node
from graphc.ir.printer import debugprint, to_dot
from graphc.options import CompileOptions

Tensor = Node
__version__ = "0.1.0"

__all__ = ["ops", "placeholder", "shared", "constant", "scan", "grad", "jacobian", "hessian", "function", "export",
           "Function", "debugprint", "to_dot", "CompileOptions", "Tensor", "Node", "GraphcError",
           "ShapeError", "DTypeError", "InputError", "GradientError", "CompileError", "ModelFileError"]
